"""The image exporter end to end on the real embedded store: layers from snapshots, the graph,
naming, unpack, garbage collection, reuse, timestamps and the tarball siblings."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pallet import labels as L
from pallet.errors import InvalidArgument, NotFound
from pallet.exporter import Source
from pallet.exporter.image import ImageExporter
from pallet.exporter.layers import ANNOTATION_REWRITTEN
from pallet.images import walk
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Platform
from pallet.oci.digest import Digest
from pallet.progress import Recorder
from pallet.rootfs import chain_ids
from support import layout_schemas, oci_schemas
from support.validate import validate_image, validate_layout

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
EPOCH = 1_700_000_000


def tree(root: Path, files: Mapping[str, bytes | str], mtime: int | None = None) -> Path:
    """Files (bytes) and symlinks (str: the target) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            p.symlink_to(data)
        else:
            p.write_bytes(data)
    if mtime is not None:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                os.utime(os.path.join(dirpath, n), (mtime, mtime), follow_symlinks=False)
        os.utime(root, (mtime, mtime))
    return root


def commit(db: Store, name: str, path: Path, parent: str = "", **labels: str) -> str:
    db.snapshotter().commit_dir(name, path, parent, labels=labels)
    return name


def exporter(db: Store, kind: str = "image", **kw: Any) -> ImageExporter:
    return ImageExporter(
        content=db.content,
        images=db.images,
        leases=db.leases,
        snapshotter=db.snapshotter(),
        kind=kind,
        default_platform=AMD64,
        **kw,
    )


def export(db: Store, attrs: Mapping[str, str], source: Source, **kw: Any) -> dict[str, str]:
    """Export ``source`` into the store; the image it wrote must pass the graph check."""
    resp = exporter(db, **kw).resolve(attrs).export(source)
    validate_image(db.content, resp["containerimage.digest"])
    return resp


def blob(db: Store, dgst: str) -> bytes:
    with db.content.open(Digest.parse(dgst)) as f:
        return f.read()


def js(db: Store, dgst: str) -> Any:
    return json.loads(blob(db, dgst))


def layer_members(db: Store, desc: Mapping[str, Any]) -> dict[str, tarfile.TarInfo]:
    data = blob(db, desc["digest"])
    if desc["mediaType"].endswith("gzip"):
        data = gzip.decompress(data)
    elif desc["mediaType"].endswith("zstd"):
        import zstandard

        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


# -- single and multi-platform graphs ---------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False])
def test_single_platform_graph_is_valid_and_holds_the_tree(
    db: Store, tmp_path: Path, oci: bool
) -> None:
    base = commit(
        db, "s1", tree(tmp_path / "r1", {"etc/os": b"pallet\n", "bin/sh": "busybox"}, EPOCH)
    )
    top_dir = tree(tmp_path / "r2", {"etc/os": b"pallet\n", "app/main": b"x" * 5000}, EPOCH)
    top = commit(db, "s2", top_dir, base)
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/app/main"]}}
    resp = export(
        db,
        {"name": "example.com/app:1", "oci-mediatypes": str(oci).lower()},
        Source(ref=top, metadata={"containerimage.config": json.dumps(cfg).encode()}),
    )
    root = resp["containerimage.digest"]
    manifest = js(db, root)
    family = "oci" if oci else "docker"
    oci_schemas.validate(f"{family}-manifest", manifest)
    assert manifest["mediaType"] == (mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST)
    config = js(db, manifest["config"]["digest"])
    oci_schemas.validate(f"{family}-config", config)
    assert resp["containerimage.config.digest"] == manifest["config"]["digest"]
    desc = json.loads(base64.b64decode(resp["containerimage.descriptor"]))
    assert desc["digest"] == root and desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert resp["image.name"] == "example.com/app:1"
    assert config["config"]["Cmd"] == ["/app/main"]
    assert (
        len(manifest["layers"]) == 2 == len(config["rootfs"]["diff_ids"]) == len(config["history"])
    )
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        raw = gzip.decompress(blob(db, layer["digest"]))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        assert layer["mediaType"] == (mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP)
    first = layer_members(db, manifest["layers"][0])
    assert first["etc/os"].isfile() and first["bin/sh"].issym()
    assert first["bin/sh"].linkname == "busybox"
    second = layer_members(db, manifest["layers"][1])
    # only the change: app/ and app/main added, bin/ deleted (one whiteout), etc/os unchanged
    assert set(second) == {"app", "app/main", ".wh.bin"}
    # the record names the root; its graph is complete and GC-labelled
    img = db.images.get("example.com/app:1")
    assert img.target.digest == root and img.target.media_type == manifest["mediaType"]
    labels = db.content.info(Digest.parse(root)).labels
    assert labels[f"{L.GC_REF_CONTENT}.config"] == manifest["config"]["digest"]
    assert labels[f"{L.GC_REF_CONTENT}.l.1"] == manifest["layers"][1]["digest"]
    assert not db.leases.list()


@pytest.mark.parametrize("oci", [True, False])
def test_multi_platform_index(db: Store, tmp_path: Path, oci: bool) -> None:
    a = commit(db, "amd", tree(tmp_path / "a", {"arch": b"amd64\n"}))
    b = commit(db, "arm", tree(tmp_path / "b", {"arch": b"arm64\n"}))
    plats = {
        "Platforms": [
            {"ID": "linux/amd64", "Platform": AMD64.to_json()},
            {"ID": "linux/arm64", "Platform": ARM64.to_json()},
        ]
    }
    resp = export(
        db,
        {"name": "multi", "oci-mediatypes": str(oci).lower()},
        Source(
            refs={"linux/amd64": a, "linux/arm64": b},
            metadata={"refs.platforms": json.dumps(plats).encode()},
        ),
    )
    index = js(db, resp["containerimage.digest"])
    oci_schemas.validate("oci-index" if oci else "docker-manifest-list", index)
    assert "containerimage.config.digest" not in resp
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    idx_labels = db.content.info(Digest.parse(resp["containerimage.digest"])).labels
    for i, m in enumerate(index["manifests"]):
        assert idx_labels[f"{L.GC_REF_CONTENT}.m.{i}"] == m["digest"]
        man = js(db, m["digest"])
        oci_schemas.validate("oci-manifest" if oci else "docker-manifest", man)
        cfg = js(db, man["config"]["digest"])
        assert cfg["architecture"] == m["platform"]["architecture"]
        (layer,) = man["layers"]
        assert "arch" in layer_members(db, layer)


def test_zero_layer_image_and_layer_dest(db: Store, tmp_path: Path) -> None:
    # not export(): BuildKit's Go nil slices (layers, created) fail image-spec's schema on purpose
    resp = exporter(db).resolve({"name": "empty"}).export(Source(ref=None))
    man = js(db, resp["containerimage.digest"])
    assert man["layers"] is None  # BuildKit writes Go's nil slice
    cfg = js(db, man["config"]["digest"])
    assert (
        cfg["rootfs"] == {"type": "layers", "diff_ids": None} or cfg["rootfs"]["type"] == "layers"
    )
    s = commit(db, "d", tree(tmp_path / "d", {"f": b"1"}), **{L.LAYER_DEST: "/opt/app"})
    resp = export(db, {"name": "dest"}, Source(ref=s))
    man = js(db, resp["containerimage.digest"])
    members = layer_members(db, man["layers"][0])
    assert set(members) == {"opt", "opt/app", "opt/app/f"}


# -- compression, reuse ------------------------------------------------------------------------


def test_existing_blob_is_reused_not_recompressed_unless_forced(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"data" * 1000}))
    first = export(db, {"name": "gz"}, Source(ref=s))
    gz_layer = js(db, first["containerimage.digest"])["layers"][0]
    info = db.snapshotter().stat(s)
    assert info.labels[L.LAYER_BLOB] == gz_layer["digest"]
    # zstd requested: the recorded gzip blob is reused (BuildKit without force-compression)
    second = export(db, {"name": "z", "compression": "zstd"}, Source(ref=s))
    assert js(db, second["containerimage.digest"])["layers"][0]["digest"] == gz_layer["digest"]
    # forced: converted
    third = export(
        db, {"name": "zf", "compression": "zstd", "force-compression": "true"}, Source(ref=s)
    )
    zl = js(db, third["containerimage.digest"])["layers"][0]
    assert zl["mediaType"] == mt.OCI_LAYER_ZSTD and zl["digest"] != gz_layer["digest"]
    assert blob(db, zl["digest"])[:4] == b"\x28\xb5\x2f\xfd"
    assert "f" in layer_members(db, zl)


@pytest.mark.parametrize(
    ("compression", "media_type", "magic"),
    [
        ("uncompressed", mt.OCI_LAYER, b""),
        ("gzip", mt.OCI_LAYER_GZIP, b"\x1f\x8b"),
        ("zstd", mt.OCI_LAYER_ZSTD, b"\x28\xb5\x2f\xfd"),
    ],
)
def test_compressions(
    db: Store, tmp_path: Path, compression: str, media_type: str, magic: bytes
) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"z" * 100000}))
    resp = export(db, {"compression": compression, "compression-level": "3"}, Source(ref=s))
    layer = js(db, resp["containerimage.digest"])["layers"][0]
    assert layer["mediaType"] == media_type
    assert blob(db, layer["digest"]).startswith(magic)
    assert layer_members(db, layer)["f"].size == 100000


def test_lazy_base_layers_reuse_their_blobs(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"base"}))
    base = export(db, {"name": "base"}, Source(ref=s))
    bl = js(db, base["containerimage.digest"])["layers"][0]
    cfg = js(db, js(db, base["containerimage.digest"])["config"]["digest"])
    sn = db.snapshotter()
    sn.commit_lazy(
        "lazy",
        labels={
            L.LAYER_BLOB: bl["digest"],
            L.LAYER_MEDIA_TYPE: bl["mediaType"],
            L.LAYER_SIZE: str(bl["size"]),
            L.LAYER_DIFF_ID: cfg["rootfs"]["diff_ids"][0],
        },
    )
    with pytest.raises(Exception, match="lazy"):
        sn.path("lazy")
    top = commit(db, "top", tree(tmp_path / "u", {"g": b"new"}), "lazy", **{L.LAYER_DEST: "/"})
    resp = export(db, {"name": "child"}, Source(ref=top))
    layers = js(db, resp["containerimage.digest"])["layers"]
    assert layers[0]["digest"] == bl["digest"] and len(layers) == 2
    assert set(layer_members(db, layers[1])) == {"g"}


# -- naming ------------------------------------------------------------------------------------


def test_naming_rules(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    src = Source(ref=s, metadata={"image.name": b"from/meta:1"})
    r = export(db, {"name": "*"}, src)
    assert (
        r["image.name"] == "from/meta:1"
        and db.images.get("from/meta:1").target.digest == r["containerimage.digest"]
    )
    r = export(db, {"name": "a:1,b:2", "name-canonical": "true"}, src)
    d = r["containerimage.digest"]
    for n in ("a:1", f"a:1@{d}", "b:2", f"b:2@{d}"):
        assert db.images.get(n).target.digest == d
    r = export(db, {"dangling-name-prefix": "dangling"}, src)
    assert r["image.name"] == f"dangling@{r['containerimage.digest']}"
    assert db.images.get(r["image.name"])
    r = export(db, {"name": "x:1", "dangling-name-prefix": "dangling"}, src)
    assert r["image.name"] == f"x:1,dangling@{r['containerimage.digest']}"
    r = export(
        db,
        {"name": "y:1", "dangling-name-prefix": "dangling", "danging-name-empty-only": "true"},
        src,
    )
    assert r["image.name"] == "y:1"
    # update of an existing name: the target moves
    s2 = commit(db, "s2", tree(tmp_path / "t2", {"f": b"2"}))
    old = db.images.get("a:1").target.digest
    r2 = export(db, {"name": "a:1"}, Source(ref=s2))
    assert db.images.get("a:1").target.digest == r2["containerimage.digest"] != old
    # no name, no store: nothing named
    before = {i.name for i in db.images.list()}
    export(db, {"name": "z:1", "store": "false"}, Source(ref=s2))
    assert {i.name for i in db.images.list()} == before


def test_resolve_errors_and_invalid_names(db: Store) -> None:
    e = exporter(db)
    with pytest.raises(InvalidArgument, match=r"failed to parse Bad Name"):
        e.resolve({"name": "Bad Name"})
    with pytest.raises(
        InvalidArgument,
        match=r'non-bool value specified for push: strconv.ParseBool: parsing "yes": '
        r"invalid syntax",
    ):
        e.resolve({"push": "yes"})
    with pytest.raises(InvalidArgument, match="unsupported compression type brotli"):
        e.resolve({"compression": "brotli"})
    with pytest.raises(InvalidArgument, match="not supported by the oci exporter"):
        exporter(db, "oci").resolve({"push": "true"})
    with pytest.raises(InvalidArgument, match="image, oci or docker"):
        exporter(db, "tar")


def test_missing_snapshot_fails_and_leaves_no_lease(db: Store) -> None:
    with pytest.raises(NotFound):
        export(db, {"name": "n"}, Source(ref="nope"))
    assert not db.leases.list()
    with pytest.raises(NotFound):
        db.images.get("n")


# -- progress ----------------------------------------------------------------------------------


def test_progress_statuses_in_buildkit_order(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    rec = Recorder()
    r = export(db, {"name": "p:1", "unpack": "true"}, Source(ref=s), progress=rec)
    man = js(db, r["containerimage.digest"])
    assert rec.ids() == [
        "exporting layers",
        f"exporting manifest {r['containerimage.digest']}",
        f"exporting config {man['config']['digest']}",
        "naming to p:1",
        "unpacking to p:1",
    ]
    assert all(e.error == "" for e in rec.events)
    assert [e.done for e in rec.events if e.id == "exporting layers"] == [False, True]


def test_progress_given_to_one_export_goes_there_only(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    default, own = Recorder(), Recorder()
    inst = exporter(db, progress=default).resolve({"name": "p:1", "unpack": "true"})
    inst.export(Source(ref=s), progress=own)
    assert default.events == []
    assert own.ids()[0] == "exporting layers"
    assert own.ids()[-2:] == ["naming to p:1", "unpacking to p:1"]
    assert "layer s" in {e.id for e in own.events}  # the layer vertices too
    inst.export(Source(ref=s))  # without: the exporter's own
    assert default.ids()[-2:] == ["naming to p:1", "unpacking to p:1"]


# -- unpack ------------------------------------------------------------------------------------


def _snap(root: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rec: dict[str, Any] = {"mode": stat.S_IMODE(st.st_mode), "fmt": stat.S_IFMT(st.st_mode)}
            if stat.S_ISREG(st.st_mode):
                rec["data"] = Path(p).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(p)
            rec["mtime"] = int(st.st_mtime)
            out[os.path.relpath(p, root)] = rec
    return out


@pytest.mark.parametrize("rewrite", [False, True])
def test_unpack_gives_the_input_tree_and_labels_the_config(
    db: Store, tmp_path: Path, rewrite: bool
) -> None:
    t1 = tree(
        tmp_path / "r1", {"etc/a": b"a", "usr/bin/x": b"#!x", "lib": "usr/lib"}, 1_600_000_000
    )
    t2 = tree(
        tmp_path / "r2",
        {"etc/a": b"a2", "usr/bin/x": b"#!x", "lib": "usr/lib", "new": b"n"},
        1_800_000_000,
    )
    os.chmod(t2 / "usr/bin/x", 0o4755)
    s1 = commit(db, "s1", t1)
    s2 = commit(db, "s2", t2, s1)
    attrs = {"name": "u:1", "unpack": "true"}
    if rewrite:
        attrs |= {"rewrite-timestamp": "true", "source-date-epoch": str(EPOCH)}
    r = export(db, attrs, Source(ref=s2))
    man = js(db, r["containerimage.digest"])
    cfg = js(db, man["config"]["digest"])
    chain = str(chain_ids(cfg["rootfs"]["diff_ids"])[-1])
    labels = db.content.info(Digest.parse(man["config"]["digest"])).labels
    assert labels[f"{L.GC_REF_SNAPSHOT_PREFIX}native"] == chain
    got = _snap(db.snapshotter().path(chain))
    want = _snap(t2)
    if rewrite:
        for rec in want.values():
            rec["mtime"] = min(rec["mtime"], EPOCH)
        assert all(ly["annotations"][ANNOTATION_REWRITTEN] == str(EPOCH) for ly in man["layers"])
        assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert got == want
    # GC keeps the unpacked chain through image -> manifest -> config label
    db.collect()
    db.snapshotter().stat(chain)


# -- garbage collection --------------------------------------------------------------------------


def test_gc_after_export_keeps_exactly_the_named_graphs(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"kept"}))
    u = commit(db, "u", tree(tmp_path / "u", {"g": b"unnamed"}))
    named = export(db, {"name": "keep:1"}, Source(ref=s))
    export(db, {}, Source(ref=u))  # no name: nothing keeps it once the lease is gone
    for name in ("s", "u"):
        db.snapshotter().remove(name)
    db.collect()
    root = db.images.get("keep:1").target
    reachable = {str(d.digest) for d in walk(db.content, root)}
    present = {str(i.digest) for i in db.content.walk()}
    assert present == reachable
    assert named["containerimage.digest"] in present
    assert not db.leases.list()


# -- epoch and reproducibility -----------------------------------------------------------------


def test_epoch_gives_byte_identical_images(db: Store, tmp_path: Path) -> None:
    files = {"a": b"1", "d/b": b"2", "l": "a"}
    roots = []
    for i in range(2):
        t = tree(tmp_path / f"t{i}", files, 1_900_000_000 + i)  # mtimes differ
        s = commit(db, f"s{i}", t)
        r = export(
            db,
            {"source-date-epoch": str(EPOCH), "rewrite-timestamp": "true"},
            Source(ref=s),
        )
        roots.append(r["containerimage.digest"])
    assert roots[0] == roots[1]
    man = js(db, roots[0])
    cfg = js(db, man["config"]["digest"])
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert all(h["created"] == "2023-11-14T22:13:20Z" for h in cfg["history"])
    assert {m.mtime for m in layer_members(db, man["layers"][0]).values()} == {EPOCH}


def test_rewrite_timestamp_without_epoch_warns(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    warnings: list[str] = []
    export(db, {"rewrite-timestamp": "true"}, Source(ref=s), on_warning=warnings.append)
    assert "rewrite-timestamp is specified, but no source-date-epoch was found" in warnings


# -- oci / docker tarballs -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_tarball_exporters(db: Store, tmp_path: Path, kind: str) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    dest = tmp_path / f"{kind}.tar"
    r = exporter(db, kind).resolve({"name": "foo", "dest": str(dest)}).export(Source(ref=s))
    assert r["image.name"] == "docker.io/library/foo:latest"
    data = dest.read_bytes()
    assert layout_schemas.validate_json_blobs(data) >= 2
    index = json.loads(layout_schemas.read(data, "index.json"))
    (entry,) = index["manifests"]
    assert entry["digest"] == r["containerimage.digest"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/foo:latest"
    assert "org.opencontainers.image.created" in entry["annotations"]
    names = [m.name for m in layout_schemas.members(data)]
    assert ("manifest.json" in names) == (kind == "docker")
    with pytest.raises(NotFound):
        db.images.get("foo")  # the tarball exporters do not name images in the store
    assert not list(tmp_path.glob(".pallet-*"))
    assert [str(d.digest) for d in validate_layout(data)] == [entry["digest"]]


def test_oci_layout_directory_and_stdout(db: Store, tmp_path: Path) -> None:
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1"}))
    out = tmp_path / "layout"
    r = exporter(db, "oci").resolve({"dest": str(out), "tar": "false"}).export(Source(ref=s))
    idx = json.loads((out / "index.json").read_text())
    assert idx["manifests"][0]["digest"] == r["containerimage.digest"]
    assert (out / "blobs/sha256" / r["containerimage.digest"].split(":")[1]).is_file()
    validate_layout(out)
    sink = io.BytesIO()
    r2 = exporter(db, "oci", stdout=sink).resolve({}).export(Source(ref=s))
    assert r2["containerimage.digest"] == r["containerimage.digest"]
    assert b"oci-layout" in sink.getvalue()[:4096] or layout_schemas.members(sink.getvalue())


def test_docker_exporter_refuses_an_index(db: Store, tmp_path: Path) -> None:
    a = commit(db, "a", tree(tmp_path / "a", {"f": b"1"}))
    plats = {
        "Platforms": [
            {"ID": "linux/amd64", "Platform": AMD64.to_json()},
            {"ID": "linux/arm64", "Platform": ARM64.to_json()},
        ]
    }
    src = Source(
        refs={"linux/amd64": a, "linux/arm64": a},
        metadata={"refs.platforms": json.dumps(plats).encode()},
    )
    with pytest.raises(
        InvalidArgument, match="does not currently support exporting manifest lists"
    ):
        exporter(db, "docker").resolve({"dest": str(tmp_path / "x.tar")}).export(src)
    assert not (tmp_path / "x.tar").exists()
    assert not list(db.content.walk())


def test_unpack_is_teed_while_layers_are_computed(
    db: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New layers are applied from their tar stream as it is made; reused ones from the blob."""
    import pallet.rootfs

    applied: list[str] = []
    real = pallet.rootfs.apply_blob

    def spy(provider: Any, blob: Any, root: Any, **kw: Any) -> Any:
        applied.append(str(kw["expected_diff_id"]))
        return real(provider, blob, root, **kw)

    monkeypatch.setattr(pallet.rootfs, "apply_blob", spy)
    t1 = tree(tmp_path / "r1", {"a": b"1", "d/b": b"2"}, 1_600_000_000)
    t2 = tree(tmp_path / "r2", {"a": b"1", "d/c": b"3"}, 1_600_000_000)
    s1 = commit(db, "s1", t1)
    s2 = commit(db, "s2", t2, s1)
    r = export(db, {"name": "t:1", "unpack": "true"}, Source(ref=s2))
    assert applied == []  # both layers were applied while computed, none from its blob
    cfg = js(db, js(db, r["containerimage.digest"])["config"]["digest"])
    chain = str(chain_ids(cfg["rootfs"]["diff_ids"])[-1])
    assert _snap(db.snapshotter().path(chain)) == _snap(t2)
    assert not [i.name for i in db.snapshotter().walk() if i.name.startswith("extract-")]
    # the same snapshots again: their blobs are recorded now, the chain exists: nothing to do
    export(db, {"name": "t:2", "unpack": "true"}, Source(ref=s2))
    assert applied == []
    # a new layer on a reused one whose chain is gone: the reused one comes from its blob
    for info in sorted(db.snapshotter().walk(), key=lambda i: -len(i.parent)):
        if info.name.startswith("sha256:"):
            db.snapshotter().remove(info.name)
    t3 = tree(tmp_path / "r3", {"a": b"1", "d/c": b"3", "e": b"4"}, 1_600_000_000)
    s3 = commit(db, "s3", t3, s2)
    r3 = export(db, {"name": "t:3", "unpack": "true"}, Source(ref=s3))
    cfg3 = js(db, js(db, r3["containerimage.digest"])["config"]["digest"])
    assert applied == cfg3["rootfs"]["diff_ids"][:2]
    top = str(chain_ids(cfg3["rootfs"]["diff_ids"])[-1])
    assert _snap(db.snapshotter().path(top)) == _snap(t3)


def test_a_failing_teed_apply_fails_the_export_and_leaves_no_snapshot(
    db: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pallet.archive.apply

    def broken(*a: Any, **kw: Any) -> Any:
        raise pallet.errors.FailedPrecondition("disk full (test)")

    monkeypatch.setattr(pallet.archive.apply, "apply_tar", broken)
    s = commit(db, "s", tree(tmp_path / "t", {"f": b"1" * 100000}))
    with pytest.raises(pallet.errors.FailedPrecondition, match="disk full"):
        export(db, {"name": "f:1", "unpack": "true"}, Source(ref=s))
    assert [i.name for i in db.snapshotter().walk()] == ["s"]
    with pytest.raises(NotFound):
        db.images.get("f:1")
    assert not db.leases.list()
