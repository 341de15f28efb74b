"""Importing archives: round trips byte for byte, Docker archives, and every refusal leaving the
store exactly as it was (no image record, no blob once the lease is collected)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet.archive.diff import write_diff
from pallet.errors import DigestMismatch, Error, InvalidArgument, NotFound, Unsupported
from pallet.images import Image, walk
from pallet.layout import (
    ArchiveImage,
    Format,
    LoadResult,
    load_archive,
    load_directory,
    plan_layout,
    save,
    unpack,
    write_directory,
)
from pallet.leases import new_id
from pallet.metadata.store import Store, open_store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Platform
from support.images import BuiltImage, build_image, build_index, make_tree, tree_state
from support.validate import InvalidImage, validate_image

# -- helpers ----------------------------------------------------------------------------------


def image(
    db: Store, tmp_path: Path, *, oci: bool = True, seed: int = 0, platform: str = "linux/amd64"
) -> BuiltImage:
    tag = f"{seed}-{oci}-{platform.replace('/', '-')}"
    tree = make_tree(tmp_path / f"tree-{tag}", seed)
    extra = tmp_path / f"extra-{tag}"
    (extra / "opt").mkdir(parents=True)
    (extra / "opt" / "second").write_text(f"layer 2 of {seed}\n")
    return build_image(db, [tree, extra], oci=oci, platform=platform)


def archive(db: Store, imgs: list[ArchiveImage], fmt: Format = Format.OCI) -> bytes:
    out = io.BytesIO()
    save(out, db.content, imgs, format=fmt)
    return out.getvalue()


def state(db: Store) -> tuple[object, ...]:
    return (
        sorted(i.digest for i in db.content.walk()),
        [(i.name, i.target.digest) for i in db.images.list()],
        [x.id for x in db.leases.list()],
        [s.ref for s in db.content.list_statuses()],
    )


def load(db: Store, data: bytes, *, tag: str | None = None, partial: bool = False) -> LoadResult:
    """What ``pallet load`` does: a lease, the import, the lease deleted (collected on failure).
    Every image loaded must pass the graph check (``partial``: an index may lack platforms)."""
    lease = db.leases.create(new_id("test-load")).id
    ok = False
    try:
        res = load_archive(io.BytesIO(data), db.content, db.images, lease=lease, tag=tag)
        ok = True
    finally:
        db.leases.delete(lease, sync=not ok)
    for img in res.images:
        validate_image(db.content, img.target, partial=partial)
    return res


def blobs_of(db: Store, root: object) -> dict[str, bytes]:
    out = {}
    for d in walk(db.content, root):  # type: ignore[arg-type]
        with db.content.open(d) as f:
            out[d.digest] = f.read()
    return out


def retar(data: bytes, edit: Callable[[list[tuple[tarfile.TarInfo, bytes | None]]], None]) -> bytes:
    """Rebuild an archive after ``edit`` changed its (member, data) list."""
    items: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            items.append((m, f.read() if f else None))
    edit(items)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tf:
        for m, b in items:
            if b is not None:
                m.size = len(b)
            tf.addfile(m, io.BytesIO(b) if b is not None else None)
    return out.getvalue()


def member(
    name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.mode = 0o644
    return ti, data


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oci", "fmt"),
    [(True, Format.OCI), (False, Format.OCI), (True, Format.DOCKER), (False, Format.DOCKER)],
    ids=["oci-types/oci", "docker-types/oci", "oci-types/docker", "docker-types/docker"],
)
def test_save_load_save_is_byte_identical(
    db: Store, tmp_path: Path, oci: bool, fmt: Format
) -> None:
    img = image(db, tmp_path, oci=oci)
    imgs = [ArchiveImage(target=img.manifest, names=("example.com/app:v1", "app:latest"))]
    first = archive(db, imgs, fmt)
    other = open_store(tmp_path / "other")
    try:
        res = load(other, first)
        assert res.format == "oci"  # pallet's Docker archives are OCI layouts too
        assert [(i.target, i.names) for i in res.images] == [
            (img.manifest, ("example.com/app:v1", "docker.io/library/app:latest"))
        ]
        assert {i.name: i.target for i in other.images.list()} == {
            "example.com/app:v1": img.manifest,
            "docker.io/library/app:latest": img.manifest,
        }
        assert blobs_of(other, img.manifest) == blobs_of(db, img.manifest)
        other.collect()  # gc labels hold the graph
        assert blobs_of(other, img.manifest) == blobs_of(db, img.manifest)
        again = archive(
            other,
            [
                ArchiveImage(
                    target=other.images.get("example.com/app:v1").target, names=imgs[0].names
                )
            ],
            fmt,
        )
        assert again == first
        assert other.leases.list() == []
    finally:
        other.close()


def test_multi_platform_round_trip(db: Store, tmp_path: Path) -> None:
    amd = image(db, tmp_path, seed=1)
    arm = image(db, tmp_path, seed=2, platform="linux/arm64", oci=True)
    idx = build_index(db, [amd, arm])
    first = archive(db, [ArchiveImage(target=idx, names=("example.com/multi:v1",))])
    other = open_store(tmp_path / "other")
    try:
        load(other, first)
        other.collect()
        assert other.images.get("example.com/multi:v1").target == idx
        assert blobs_of(other, idx) == blobs_of(db, idx)
        assert archive(other, [ArchiveImage(target=idx, names=("example.com/multi:v1",))]) == first
    finally:
        other.close()


def test_compressed_archive_and_tag(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    data = archive(db, [ArchiveImage(target=img.manifest)])
    other = open_store(tmp_path / "other")
    try:
        with pytest.raises(InvalidArgument, match="has no name"):
            load(other, data)
        assert other.images.list() == []
        res = load(other, gzip.compress(data), tag="mine:v2")
        assert res.images[0].names == ("docker.io/library/mine:v2",)
        assert other.images.get("docker.io/library/mine:v2").target == img.manifest
    finally:
        other.close()


def test_a_tag_needs_a_single_image(db: Store, tmp_path: Path) -> None:
    a, b = image(db, tmp_path, seed=1), image(db, tmp_path, seed=2)
    data = archive(
        db,
        [
            ArchiveImage(target=a.manifest, names=("a:1",)),
            ArchiveImage(target=b.manifest, names=("b:1",)),
        ],
    )
    db.images.create(Image(name="a", target=a.manifest))
    db.images.create(Image(name="b", target=b.manifest))
    before = state(db)
    with pytest.raises(InvalidArgument, match="a tag names one image"):
        load(db, data, tag="c:1")
    assert state(db) == before


def test_existing_name_moves_to_the_loaded_image(db: Store, tmp_path: Path) -> None:
    a, b = image(db, tmp_path, seed=1), image(db, tmp_path, seed=2)
    db.images.create(Image(name="docker.io/library/app:v1", target=a.manifest))
    load(db, archive(db, [ArchiveImage(target=b.manifest, names=("app:v1",))]))
    assert db.images.get("docker.io/library/app:v1").target == b.manifest


def _legacy_docker_archive(tmp_path: Path, manifest_first: bool) -> tuple[bytes, Path, str]:
    """An archive as ``docker save`` wrote it before v25: v1 directories, a symlinked repeated
    layer, the config by its hex, manifest.json and repositories; no OCI files."""
    tree = make_tree(tmp_path / "legacy-tree", 7)
    buf = io.BytesIO()
    write_diff(None, tree, buf)
    layer = buf.getvalue()
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff, diff]},
        }
    ).encode()
    chex = hashlib.sha256(cfg).hexdigest()
    v1a, v1b = "a" * 64, "b" * 64
    manifest = json.dumps(
        [
            {
                "Config": f"{chex}.json",
                "RepoTags": ["legacy:v1"],
                "Layers": [f"{v1a}/layer.tar", f"./{v1b}/layer.tar"],
            }
        ]
    ).encode()
    items = [
        member(f"{v1a}/", kind=tarfile.DIRTYPE),
        member(f"{v1a}/VERSION", b"1.0"),
        member(f"{v1a}/json", b"{}"),
        member(f"{v1a}/layer.tar", layer),
        member(f"{v1b}/", kind=tarfile.DIRTYPE),
        member(f"{v1b}/layer.tar", kind=tarfile.SYMTYPE, link=f"../{v1a}/layer.tar"),
        member(f"{chex}.json", cfg),
        member("repositories", b'{"legacy":{"v1":"' + v1b.encode() + b'"}}'),
    ]
    mf = member("manifest.json", manifest)
    items = [mf, *items] if manifest_first else [*items, mf]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.GNU_FORMAT) as tf:
        for m, b in items:
            if b is not None:
                m.size = len(b)
            tf.addfile(m, io.BytesIO(b) if b is not None else None)
    return out.getvalue(), tree, diff


@pytest.mark.parametrize("manifest_first", [False, True], ids=["manifest-last", "manifest-first"])
def test_legacy_docker_archive(db: Store, tmp_path: Path, manifest_first: bool) -> None:
    data, tree, diff = _legacy_docker_archive(tmp_path, manifest_first)
    res = load(db, data)
    assert res.format == "docker"
    (img,) = res.images
    assert img.names == ("docker.io/library/legacy:v1",)
    assert img.target.media_type == mt.DOCKER_MANIFEST
    with db.content.open(img.target) as f:
        m = json.loads(f.read())
    assert m["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert [ly["mediaType"] for ly in m["layers"]] == [mt.DOCKER_LAYER] * 2
    assert [ly["digest"] for ly in m["layers"]] == [diff, diff]
    db.collect()
    unpack(db.content, img.target, tmp_path / "rootfs")
    assert tree_state(tmp_path / "rootfs") == tree_state(tree)
    # the v1 json/VERSION files were only held by the lease
    assert len(list(db.content.walk())) == 3


def test_load_directory(db: Store, tmp_path: Path) -> None:
    a = image(db, tmp_path)
    lay = tmp_path / "layout"
    write_directory(
        lay, db.content, plan_layout(db.content, [ArchiveImage(target=a.manifest, names=("a:v1",))])
    )
    other = open_store(tmp_path / "other")
    try:
        lease = other.leases.create(new_id()).id
        res = load_directory(lay, other.content, other.images, lease=lease)
        other.leases.delete(lease)
        other.collect()
        assert res.images[0].names == ("docker.io/library/a:v1",)
        validate_image(other.content, res.images[0].target)
        assert blobs_of(other, a.manifest) == blobs_of(db, a.manifest)
        # a blob that is a symbolic link is refused, even to the right content
        blob = lay / "blobs" / "sha256" / a.layers[0].digest.hex
        real = tmp_path / "elsewhere"
        os.rename(blob, real)
        os.symlink(real, blob)
        third = open_store(tmp_path / "third")
        lease = third.leases.create(new_id()).id
        with pytest.raises(InvalidArgument, match="symbolic link"):
            load_directory(lay, third.content, third.images, lease=lease)
        third.leases.delete(lease, sync=True)
        assert state(third) == ([], [], [], [])
        third.close()
    finally:
        other.close()


# -- refusals ---------------------------------------------------------------------------------


def _good(db: Store, tmp_path: Path, fmt: Format = Format.OCI) -> tuple[BuiltImage, bytes]:
    img = image(db, tmp_path, seed=3)
    return img, archive(db, [ArchiveImage(target=img.manifest, names=("example.com/x:v1",))], fmt)


def _flip_layer(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    for i, (m, b) in enumerate(items):
        if b is not None and len(b) > 1000 and m.name.startswith("blobs/"):
            bad = bytearray(b)
            bad[len(bad) // 2] ^= 1
            items[i] = (m, bytes(bad))
            return
    raise AssertionError("no layer")


def _drop_layer(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    for i, (m, b) in enumerate(items):
        if b is not None and len(b) > 1000 and m.name.startswith("blobs/"):
            del items[i]
            return


def _edit_index(
    fn: Callable[[dict[str, object]], None],
) -> Callable[[list[tuple[tarfile.TarInfo, bytes | None]]], None]:
    def edit(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
        for i, (m, b) in enumerate(items):
            if m.name == "index.json":
                doc = json.loads(b or b"")
                fn(doc)
                items[i] = (m, json.dumps(doc).encode())

    return edit


def _bigger(doc: dict[str, object]) -> None:
    doc["manifests"][0]["size"] += 1  # type: ignore[index]


def _unnamed(doc: dict[str, object]) -> None:
    del doc["manifests"][0]["annotations"]  # type: ignore[index]


def _add(
    *extra: tuple[tarfile.TarInfo, bytes | None],
) -> Callable[[list[tuple[tarfile.TarInfo, bytes | None]]], None]:
    def edit(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
        items[2:2] = list(extra)

    return edit


def _docker_only(
    manifest: list[dict[str, object]],
) -> Callable[[list[tuple[tarfile.TarInfo, bytes | None]]], None]:
    """Drop the OCI files and write ``manifest`` as manifest.json."""

    def edit(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
        items[:] = [
            (m, b) for m, b in items if m.name not in ("index.json", "oci-layout", "manifest.json")
        ]
        items.append(member("manifest.json", json.dumps(manifest).encode()))

    return edit


SHA = "sha256:" + "0" * 64

REFUSALS: list[tuple[str, Callable[[bytes, BuiltImage], bytes], type[Error], str]] = [
    ("empty", lambda d, i: b"", InvalidArgument, "truncated"),
    ("cut-mid-blob", lambda d, i: d[: len(d) // 2], InvalidArgument, "truncated"),
    ("cut-mid-header", lambda d, i: d[: 512 + 512 + 100], InvalidArgument, "truncated"),
    ("cut-before-end-marker", lambda d, i: d[:-1024], InvalidArgument, "truncated"),
    ("cut-last-entry", lambda d, i: d[: d.rindex(b"oci-layout")], InvalidArgument, "truncated"),
    ("wrong-digest", lambda d, i: retar(d, _flip_layer), DigestMismatch, "digest mismatch"),
    ("wrong-size", lambda d, i: retar(d, _edit_index(_bigger)), DigestMismatch, "descriptor says"),
    (
        "missing-blob",
        lambda d, i: retar(d, _drop_layer),
        InvalidArgument,
        "missing from the archive",
    ),
    ("no-name", lambda d, i: retar(d, _edit_index(_unnamed)), InvalidArgument, "has no name"),
    ("dotdot", lambda d, i: retar(d, _add(member("../evil", b"x"))), InvalidArgument, "escapes"),
    (
        "dotdot-inside",
        lambda d, i: retar(d, _add(member("blobs/../../evil", b"x"))),
        InvalidArgument,
        "escapes",
    ),
    (
        "absolute",
        lambda d, i: retar(d, _add(member("/tmp/evil", b"x"))),
        InvalidArgument,
        "absolute",
    ),
    (
        "symlink-absolute",
        lambda d, i: retar(
            d, _add(member("blobs/sha256/" + "1" * 64, kind=tarfile.SYMTYPE, link="/etc/passwd"))
        ),
        InvalidArgument,
        "outside the archive",
    ),
    (
        "symlink-up",
        lambda d, i: retar(
            d, _add(member("blobs/up", kind=tarfile.SYMTYPE, link="../../etc/passwd"))
        ),
        InvalidArgument,
        "outside the archive",
    ),
    (
        "hardlink-absolute",
        lambda d, i: retar(d, _add(member("h", kind=tarfile.LNKTYPE, link="/etc/passwd"))),
        InvalidArgument,
        "outside the archive",
    ),
    (
        "hardlink-unknown",
        lambda d, i: retar(d, _add(member("h", kind=tarfile.LNKTYPE, link="etc/passwd"))),
        InvalidArgument,
        "not an earlier file",
    ),
    (
        "symlinked-blob-wrong-content",
        lambda d, i: retar(
            d,
            _add(member("blobs/sha256/" + "1" * 64, kind=tarfile.SYMTYPE, link="../../oci-layout")),
        ),
        InvalidArgument,
        "link to nothing",
    ),
    (
        "device",
        lambda d, i: retar(d, _add(member("dev", kind=tarfile.CHRTYPE))),
        Unsupported,
        "character device",
    ),
    (
        "not-a-blob-path",
        lambda d, i: retar(d, _add(member("blobs/sha256/zz", b"x"))),
        InvalidArgument,
        "not a blob path",
    ),
    (
        "manifest-json-config-outside",
        lambda d, i: retar(
            d, _docker_only([{"Config": "../../etc/passwd", "RepoTags": ["x:1"], "Layers": []}])
        ),
        InvalidArgument,
        "points outside the archive",
    ),
    (
        "manifest-json-layer-absolute",
        lambda d, i: retar(
            d,
            _docker_only(
                [
                    {
                        "Config": f"blobs/sha256/{i.config.digest.hex}",
                        "RepoTags": ["x:1"],
                        "Layers": ["/etc/passwd", "/etc/passwd"],
                    }
                ]
            ),
        ),
        InvalidArgument,
        "points outside the archive",
    ),
    (
        "manifest-json-missing-layer",
        lambda d, i: retar(
            d,
            _docker_only(
                [
                    {
                        "Config": f"blobs/sha256/{i.config.digest.hex}",
                        "RepoTags": ["x:1"],
                        "Layers": ["nope.tar", "nope2.tar"],
                    }
                ]
            ),
        ),
        InvalidArgument,
        "not in the archive",
    ),
    ("not-an-archive-kind", lambda d, i: _only_file(), InvalidArgument, "neither"),
]


def _only_file() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"hi"))
    return out.getvalue()


@pytest.mark.parametrize(("case", "make", "exc", "text"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_archives_import_nothing(
    db: Store,
    tmp_path: Path,
    case: str,
    make: Callable[[bytes, BuiltImage], bytes],
    exc: type[Error],
    text: str,
) -> None:
    keep = image(db, tmp_path, seed=9)  # something already in the store must survive
    db.images.create(Image(name="example.com/keep:v1", target=keep.manifest))
    img, good = _good(db, tmp_path)
    other = open_store(tmp_path / "other")
    try:
        load(
            other, archive(db, [ArchiveImage(target=keep.manifest, names=("example.com/keep:v1",))])
        )
        before = state(other)
        bad = make(good, img)
        with pytest.raises(exc) as info:
            load(other, bad)
        msg = str(info.value)
        assert text in msg and "\n" not in msg, msg
        assert state(other) == before
        assert blobs_of(other, keep.manifest) == blobs_of(db, keep.manifest)
    finally:
        other.close()


def _cli(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        input=input,
        capture_output=True,
        timeout=120,
    )


def test_cli_load(db: Store, tmp_path: Path) -> None:
    img, good = _good(db, tmp_path, Format.DOCKER)
    root = tmp_path / "cli-store"
    r = _cli(root, "load", input=good)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"loaded example.com/x:v1 {img.manifest.digest}\n"
    r = _cli(root, "load", "--tag", "y:2", "--format", "json", input=good)
    out = json.loads(r.stdout)
    assert out["images"][0]["names"] == ["example.com/x:v1", "docker.io/library/y:2"]
    check = open_store(root)
    try:
        before = state(check)
        assert before[2] == [] and before[3] == []
        validate_image(check.content, img.manifest)
    finally:
        check.close()
    f = tmp_path / "bad.tar"
    f.write_bytes(good[: len(good) // 2])
    r = _cli(root, "load", "-i", str(f))
    assert r.returncode == 2
    assert (
        r.stderr.decode().startswith("pallet: error: archive: truncated")
        and r.stderr.count(b"\n") == 1
    )
    f.write_bytes(retar(good, _flip_layer))
    r = _cli(root, "load", "-i", str(f))
    assert r.returncode == 1 and b"digest mismatch" in r.stderr and r.stderr.count(b"\n") == 1
    check = open_store(root)
    try:
        assert state(check) == before
    finally:
        check.close()


def test_an_index_may_lack_platforms_but_not_all(db: Store, tmp_path: Path) -> None:
    amd = image(db, tmp_path, seed=1)
    arm = image(db, tmp_path, seed=2, platform="linux/arm64")
    idx = build_index(db, [amd, arm])
    data = archive(db, [ArchiveImage(target=idx, names=("example.com/multi:v1",))])
    arm_blobs = {f"blobs/sha256/{d.digest.hex}" for d in [arm.manifest, arm.config, *arm.layers]}
    amd_blobs = {f"blobs/sha256/{d.digest.hex}" for d in [amd.manifest, amd.config, *amd.layers]}

    def drop(names: set[str]) -> Callable[[list[tuple[tarfile.TarInfo, bytes | None]]], None]:
        def edit(items: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
            items[:] = [(m, b) for m, b in items if m.name not in names]

        return edit

    other = open_store(tmp_path / "other")
    try:
        load(other, retar(data, drop(arm_blobs)), partial=True)
        other.collect()
        validate_image(other.content, idx, partial=True)
        with pytest.raises(InvalidImage, match="missing"):
            validate_image(other.content, idx)
        target = other.images.get("example.com/multi:v1").target
        assert target == idx
        unpack(other.content, target, tmp_path / "amd", platform=Platform.parse("linux/amd64"))
        with pytest.raises(NotFound):
            unpack(other.content, target, tmp_path / "arm", platform=Platform.parse("linux/arm64"))
        with pytest.raises(NotFound, match="incomplete"):
            plan_layout(other.content, [ArchiveImage(target=target)])
        before = state(other)
        with pytest.raises(InvalidArgument, match="no manifest of image"):
            load(other, retar(data, drop(arm_blobs | amd_blobs)))
        # a present manifest must be complete
        with pytest.raises(InvalidArgument, match="missing from the archive"):
            load(other, retar(data, drop({f"blobs/sha256/{arm.layers[0].digest.hex}"})))
        assert state(other) == before
    finally:
        other.close()
