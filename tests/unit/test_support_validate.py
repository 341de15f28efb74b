"""The image checker of the tests (tests/support/validate.py) passes good graphs and fails each
kind of broken one with a message that names the problem."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.compression import Compression
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from support.images import (
    GC_REF,
    BuiltImage,
    build_image,
    build_index,
    make_tree,
    put,
    random_image,
)
from support.validate import InvalidImage, LayoutProvider, validate_image, validate_layout


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def image(
    db: Store,
    layers: list[Descriptor],
    diff_ids: list[Digest],
    *,
    labels: bool = True,
    media_type: str = mt.OCI_MANIFEST,
    doc: dict[str, object] | None = None,
) -> Descriptor:
    """A manifest over ``layers`` whose config lists ``diff_ids``, written as given (no checks)."""
    cfg = put(
        db,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
            }
        ).encode(),
        media_type=mt.OCI_CONFIG,
    )
    manifest = doc or {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": cfg.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    gc = {f"{GC_REF}.config": str(cfg.digest)}
    gc.update({f"{GC_REF}.l.{i}": str(d.digest) for i, d in enumerate(layers)})
    return put(
        db, json.dumps(manifest).encode(), labels=gc if labels else None, media_type=media_type
    )


def gz_layer(db: Store, files: dict[str, bytes]) -> tuple[Descriptor, Digest]:
    raw = tar(files)
    return put(db, gzip.compress(raw, mtime=0), media_type=mt.OCI_LAYER_GZIP), sha(raw)


# -- good graphs pass -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oci", "compression"),
    [(True, Compression.GZIP), (True, Compression.ZSTD), (True, Compression.UNCOMPRESSED),
     (False, Compression.GZIP)],
)  # fmt: skip
def test_built_images_and_indexes_pass(
    db: Store, tmp_path: Path, oci: bool, compression: Compression
) -> None:
    tree = make_tree(tmp_path / "tree", 1)
    amd = build_image(db, [tree, tar({"extra": b"x" * 5000})], oci=oci, compression=compression)
    arm = build_image(db, [tree], oci=oci, compression=compression, platform="linux/arm64/v8")
    validate_image(db.content, amd.manifest)
    validate_image(db.content, str(amd.manifest.digest))  # the media type read from the blob
    index = build_index(db, [amd, arm], oci=oci)
    validate_image(db.content, index)
    validate_image(db.content, index.digest)


def test_random_images_pass(db: Store) -> None:
    img = random_image(db, 3, sizes=[0, 1, 70_000], shared=[b"shared"])
    validate_image(db.content, img.manifest)
    validate_image(db.content, build_index(db, [img, random_image(db, 4)]))


def test_a_gzip_layer_of_several_members_passes(db: Store) -> None:
    raw = tar({"a": b"a" * 3000, "b": b"b" * 3000})
    blob = gzip.compress(raw[:4096], mtime=0) + gzip.compress(raw[4096:], mtime=0)
    layer = put(db, blob, media_type=mt.OCI_LAYER_GZIP)
    validate_image(db.content, image(db, [layer], [sha(raw)]))


# -- each broken invariant fails, with its reason ---------------------------------------------


def test_wrong_size(db: Store) -> None:
    layer, diff = gz_layer(db, {"f": b"data"})
    m = image(db, [replace(layer, size=layer.size + 1)], [diff])
    with pytest.raises(InvalidImage, match=rf"layer {layer.digest}: {layer.size} bytes, its "
                       rf"descriptor says {layer.size + 1}"):  # fmt: skip
        validate_image(db.content, m)
    with pytest.raises(InvalidImage, match=r"manifest sha256:\w+: \d+ bytes, its descriptor says"):
        validate_image(db.content, replace(m, size=m.size - 1))


def test_wrong_digest(db: Store, tmp_path: Path) -> None:
    """A store checks digests on commit; a layout directory is only files, so corrupt one."""
    img = random_image(db, 5, sizes=[1000])
    out = tmp_path / "layout"
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for d in (img.manifest, img.config, *img.layers):
        shutil.copyfile(db.content.blob_path(d.digest), blobs / d.digest.hex)
    validate_image(LayoutProvider(out), img.manifest, labels=False)
    victim = blobs / img.layers[0].digest.hex
    data = bytearray(victim.read_bytes())
    data[10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(InvalidImage) as ei:
        validate_image(LayoutProvider(out), img.manifest, labels=False)
    msg = str(ei.value)
    assert f"layer {img.layers[0].digest}: the bytes hash to sha256:" in msg
    # the layer is uncompressed, so its diff ID is wrong too: both are reported
    assert f"config {img.config.digest}: diff_ids[0] is {img.layers[0].digest}" in msg


def test_wrong_diff_id(db: Store) -> None:
    layer, diff = gz_layer(db, {"f": b"data"})
    wrong = sha(b"something else")
    with pytest.raises(InvalidImage, match=rf"diff_ids\[0\] is {wrong}, layer {layer.digest} "
                       rf"uncompresses to {diff}"):  # fmt: skip
        validate_image(db.content, image(db, [layer], [wrong]))
    with pytest.raises(InvalidImage, match=r"2 diff_ids for the 1 layers"):
        validate_image(db.content, image(db, [layer], [diff, diff]))


def test_wrong_uncompressed_label(db: Store) -> None:
    raw = tar({"f": b"labelled"})
    blob = gzip.compress(raw, mtime=0)
    layer = put(
        db,
        blob,
        media_type=mt.OCI_LAYER_GZIP,
        labels={"containerd.io/uncompressed": str(sha(b"not it"))},
    )
    m = image(db, [layer], [sha(raw)])
    with pytest.raises(InvalidImage, match=r"containerd.io/uncompressed label sha256:\w+, diff ID"):
        validate_image(db.content, m)
    validate_image(db.content, m, labels=False)


def test_missing_child(db: Store) -> None:
    raw = tar({"f": b"never stored"})
    blob = gzip.compress(raw, mtime=0)
    ghost = Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha(blob), size=len(blob))
    m = image(db, [ghost], [sha(raw)])
    with pytest.raises(InvalidImage) as ei:
        validate_image(db.content, m)
    assert f"- layer {ghost.digest} ({mt.OCI_LAYER_GZIP}): missing" in str(ei.value)
    # a non-distributable layer with URLs may be absent
    foreign = replace(ghost, media_type=mt.OCI_ND_LAYER_GZIP, urls=("https://example.com/l",))
    validate_image(db.content, image(db, [foreign], [sha(raw)]))
    with pytest.raises(InvalidImage, match=r"image sha256:\w+: missing"):
        validate_image(db.content, sha(b"no such manifest"))


def test_missing_gc_label(db: Store) -> None:
    layer, diff = gz_layer(db, {"f": b"unlabelled"})
    m = image(db, [layer], [diff], labels=False)
    with pytest.raises(InvalidImage) as ei:
        validate_image(db.content, m)
    assert f"no {GC_REF}.* label for its child {layer.digest} ({mt.OCI_LAYER_GZIP})" in str(
        ei.value
    )
    assert str(ei.value).count(f"no {GC_REF}.* label") == 2  # the config's too
    validate_image(db.content, m, labels=False)  # e.g. a layout directory has no labels


def test_corrupt_compression(db: Store) -> None:
    blob = gzip.compress(tar({"f": b"x" * 1000}), mtime=0)[:-12] + b"\0" * 12
    layer = put(db, blob, media_type=mt.OCI_LAYER_GZIP)
    with pytest.raises(InvalidImage, match=rf"layer {layer.digest} .*: does not decompress"):
        validate_image(db.content, image(db, [layer], [sha(b"")]))
    zlayer = put(db, b"not zstd at all", media_type=mt.OCI_LAYER_ZSTD)
    with pytest.raises(InvalidImage, match=rf"layer {zlayer.digest} .*: does not decompress"):
        validate_image(db.content, image(db, [zlayer], [sha(b"")]))


def test_schema_and_media_type(db: Store) -> None:
    layer, diff = gz_layer(db, {"f": b"schema"})
    no_layers = image(
        db,
        [],
        [],
        doc={
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(sha(b"{}")), "size": 2},
        },
    )
    with pytest.raises(InvalidImage, match=r"fails the oci-manifest schema at \(root\): 'layers'"):
        validate_image(db.content, no_layers)
    m = image(db, [layer], [diff])
    as_docker = replace(m, media_type=mt.DOCKER_MANIFEST)
    with pytest.raises(InvalidImage) as ei:
        validate_image(db.content, as_docker)
    assert f"its mediaType is {mt.OCI_MANIFEST}, its descriptor says {mt.DOCKER_MANIFEST}" in str(
        ei.value
    )
    assert "fails the docker-manifest schema" in str(ei.value)
    bad_cfg = put(db, b'{"os": "linux"}', media_type=mt.OCI_CONFIG)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": bad_cfg.to_json(),
        "layers": [layer.to_json()],
    }
    with pytest.raises(InvalidImage, match=r"config sha256:\w+: fails the oci-config schema"):
        validate_image(db.content, image(db, [layer], [diff], doc=doc), labels=False)


def test_index_children(db: Store) -> None:
    imgs: list[BuiltImage] = [random_image(db, 6), random_image(db, 7, platform="linux/arm64")]
    ghost = replace(imgs[1], manifest=replace(imgs[1].manifest, digest=sha(b"gone"), size=4))
    index = build_index(db, [imgs[0], ghost])
    with pytest.raises(InvalidImage, match=r"manifest sha256:\w+ \(.*\): missing"):
        validate_image(db.content, index)
    validate_image(db.content, index, partial=True)  # a pull of selected platforms
    none = build_index(db, [ghost])
    with pytest.raises(InvalidImage, match=r"index sha256:\w+: none of its 1 manifests is present"):
        validate_image(db.content, none, partial=True)
    unlabelled = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [replace(i.manifest, platform=i.platform).to_json() for i in imgs],
        }
    ).encode()
    u = put(db, unlabelled, media_type=mt.OCI_INDEX)
    with pytest.raises(InvalidImage, match=rf"index {u.digest}: no {GC_REF}.\* label for its "
                       rf"child {imgs[0].manifest.digest}"):  # fmt: skip
        validate_image(db.content, u)
    # a problem deep in a child manifest fails the index too
    layer, _ = gz_layer(db, {"f": b"deep"})
    bad = image(db, [layer], [sha(b"wrong")])
    deep = put(
        db,
        json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [bad.to_json()]})
        .encode(),
        labels={f"{GC_REF}.m.0": str(bad.digest)},
        media_type=mt.OCI_INDEX,
    )  # fmt: skip
    with pytest.raises(InvalidImage, match=r"diff_ids\[0\] is"):
        validate_image(db.content, deep)


def test_layout(db: Store, tmp_path: Path) -> None:
    from pallet.layout import ArchiveImage, plan_layout, save, write_directory

    img = build_image(db, [make_tree(tmp_path / "tree", 2)])
    imgs = [ArchiveImage(target=img.manifest, names=("example.com/a:1",))]
    out = tmp_path / "layout"
    write_directory(out, db.content, plan_layout(db.content, imgs))
    assert [r.digest for r in validate_layout(out)] == [img.manifest.digest]
    buf = io.BytesIO()
    save(buf, db.content, imgs)
    archive = buf.getvalue()
    assert [r.digest for r in validate_layout(archive)] == [img.manifest.digest]
    (out / "blobs" / "sha256" / img.config.digest.hex).unlink()
    with pytest.raises(InvalidImage, match=rf"config {img.config.digest} \(.*\): missing"):
        validate_layout(out)
    (out / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(InvalidImage, match="oci-layout is"):
        validate_layout(out)
    # in an archive: a layer's bytes changed (same length) break its digest and diff ID
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        files = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf]  # type: ignore[union-attr]
    edited = io.BytesIO()
    with tarfile.open(fileobj=edited, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m, data in files:
            if m.name == f"blobs/sha256/{img.layers[0].digest.hex}":
                data = gzip.compress(b"\0" * 10, mtime=0)[: m.size].ljust(m.size, b"\0")
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(InvalidImage, match=rf"layer {img.layers[0].digest}: the bytes hash to"):
        validate_layout(edited.getvalue())
    with pytest.raises(InvalidImage, match="index.json: not in layout archive"):
        validate_layout(tar({"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}))
