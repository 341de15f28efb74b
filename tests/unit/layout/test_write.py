"""The OCI layout / Docker archive writer: layout, names, determinism, streaming, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.errors import DigestMismatch, NotFound, Unsupported
from pallet.images import Image
from pallet.layout import (
    DOCKER_MANIFEST_LISTS_UNSUPPORTED,
    ArchiveImage,
    Format,
    plan_layout,
    save,
    write_archive,
    write_directory,
)
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Platform
from support.images import BuiltImage, build_image, build_index, make_tree
from support.layout_schemas import members, read, validate_json_blobs
from support.validate import validate_layout


def image(
    db: Store, tmp_path: Path, *, oci: bool = True, seed: int = 0, platform: str = "linux/amd64"
) -> BuiltImage:
    tree = make_tree(tmp_path / f"tree-{seed}-{oci}-{platform.replace('/', '-')}", seed)
    extra = tmp_path / f"extra-{seed}-{oci}-{platform.replace('/', '-')}"
    (extra / "opt").mkdir(parents=True)
    (extra / "opt" / "second-layer").write_text(f"layer 2 of {seed}\n")
    return build_image(db, [tree, extra], oci=oci, platform=platform)


def test_oci_archive_layout_entries_and_names(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    out = io.BytesIO()
    plan = save(
        out,
        db.content,
        [ArchiveImage(target=img.manifest, names=("app", "example.com/team/app:v1", "app"))],
    )
    data = out.getvalue()
    ms = members(data)
    names = [m.name for m in ms]
    assert names == sorted(names)
    blobs = sorted(
        str(d)[7:]
        for d in [img.manifest.digest, img.config.digest] + [x.digest for x in img.layers]
    )
    assert names == [
        "blobs",
        "blobs/sha256",
        *[f"blobs/sha256/{h}" for h in blobs],
        "index.json",
        "oci-layout",
    ]
    for m in ms:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        want = {"blobs": 0o755, "blobs/sha256": 0o755, "index.json": 0o644, "oci-layout": 0o444}
        assert m.mode == want.get(m.name, 0o444), m.name
    for h in blobs:
        assert hashlib.sha256(read(data, f"blobs/sha256/{h}")).hexdigest() == h
    assert read(data, "oci-layout") == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads(read(data, "index.json"))
    assert index["schemaVersion"] == 2 and index["mediaType"] == mt.OCI_INDEX
    assert [e["annotations"] for e in index["manifests"]] == [
        {
            "io.containerd.image.name": "docker.io/library/app:latest",
            "org.opencontainers.image.ref.name": "latest",
        },
        {
            "io.containerd.image.name": "example.com/team/app:v1",
            "org.opencontainers.image.ref.name": "v1",
        },
    ]
    assert {e["digest"] for e in index["manifests"]} == {img.manifest.digest}
    # compact JSON, no trailing newline
    assert b" " not in read(data, "index.json") and not read(data, "index.json").endswith(b"\n")
    assert plan.images[0].names == ("docker.io/library/app:latest", "example.com/team/app:v1")
    assert validate_json_blobs(data) == 4
    assert [d.digest for d in validate_layout(data)] == [img.manifest.digest] * 2


def test_unnamed_by_digest_and_annotation_entries(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    from dataclasses import replace

    target = replace(
        img.manifest, annotations={"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}
    )
    data = io.BytesIO()
    save(data, db.content, [ArchiveImage(target=target)])
    entries = json.loads(read(data.getvalue(), "index.json"))["manifests"]
    assert entries == [
        {
            **img.manifest.to_json(),
            "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
        }
    ]
    by_digest = f"example.com/app@{img.manifest.digest}"
    data = io.BytesIO()
    save(data, db.content, [ArchiveImage(target=target, names=(by_digest,))])
    (entry,) = json.loads(read(data.getvalue(), "index.json"))["manifests"]
    assert entry["annotations"] == {
        "io.containerd.image.name": by_digest,
        "org.opencontainers.image.ref.name": by_digest,
        "org.opencontainers.image.created": "2024-01-02T03:04:05Z",
    }


@pytest.mark.parametrize("oci", [True, False], ids=["oci-types", "docker-types"])
def test_docker_archive_manifest_json(db: Store, tmp_path: Path, oci: bool) -> None:
    img = image(db, tmp_path, oci=oci)
    out = io.BytesIO()
    save(
        out,
        db.content,
        [
            ArchiveImage(
                target=img.manifest,
                names=(
                    "app:v1",
                    "docker.io/library/app:latest",
                    f"app@{img.manifest.digest}",
                    "localhost:5000/x/y:z",
                ),
            )
        ],
        format=Format.DOCKER,
    )
    data = out.getvalue()
    names = [m.name for m in members(data)]
    assert names[-3:] == ["index.json", "manifest.json", "oci-layout"]
    assert next(m for m in members(data) if m.name == "manifest.json").mode == 0o644
    (entry,) = json.loads(read(data, "manifest.json"))
    assert entry == {
        "Config": f"blobs/sha256/{img.config.digest.hex}",
        "RepoTags": ["app:v1", "app:latest", "localhost:5000/x/y:z"],
        "Layers": [f"blobs/sha256/{x.digest.hex}" for x in img.layers],
    }
    assert list(entry) == ["Config", "RepoTags", "Layers"]
    for p in [entry["Config"], *entry["Layers"]]:
        assert p in names
    validate_json_blobs(data)
    validate_layout(data)  # a Docker archive is an OCI layout too


def test_docker_archive_without_names_has_null_repotags(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    out = io.BytesIO()
    save(out, db.content, [ArchiveImage(target=img.manifest)], format=Format.DOCKER)
    assert json.loads(read(out.getvalue(), "manifest.json"))[0]["RepoTags"] is None


def test_two_images_share_blobs_once(db: Store, tmp_path: Path) -> None:
    a = image(db, tmp_path, seed=1)
    b = build_image(db, [a.trees[0], tmp_path / "tree-1-True-linux-amd64"], oci=True)
    out = io.BytesIO()
    plan = save(
        out,
        db.content,
        [
            ArchiveImage(target=a.manifest, names=("a:1",)),
            ArchiveImage(target=b.manifest, names=("b:1",)),
        ],
        format=Format.DOCKER,
    )
    names = [m.name for m in members(out.getvalue())]
    assert len(names) == len(set(names))
    assert len(json.loads(read(out.getvalue(), "manifest.json"))) == 2
    assert len(plan.blobs) == len({d.digest for d in plan.blobs})
    assert [d.digest for d in validate_layout(out.getvalue())] == [
        a.manifest.digest,
        b.manifest.digest,
    ]


def test_multi_platform(db: Store, tmp_path: Path) -> None:
    amd = image(db, tmp_path, platform="linux/amd64", seed=1)
    arm = image(db, tmp_path, oci=True, platform="linux/arm64", seed=2)
    idx = build_index(db, [amd, arm])
    imgs = [ArchiveImage(target=idx, names=("example.com/multi:v1",))]
    out = io.BytesIO()
    plan = save(out, db.content, imgs)
    data = out.getvalue()
    (entry,) = json.loads(read(data, "index.json"))["manifests"]
    assert entry["digest"] == idx.digest and entry["mediaType"] == mt.OCI_INDEX
    assert {d.digest for d in plan.blobs} == {
        idx.digest,
        *(d.digest for i in (amd, arm) for d in [i.manifest, i.config, *i.layers]),
    }
    validate_json_blobs(data)
    validate_layout(data)
    # Docker: one manifest per image; an index needs a platform
    with pytest.raises(Unsupported) as exc:
        plan_layout(db.content, imgs, format=Format.DOCKER)
    assert str(exc.value) == DOCKER_MANIFEST_LISTS_UNSUPPORTED
    plan = plan_layout(
        db.content, imgs, format=Format.DOCKER, platform=Platform.parse("linux/arm64")
    )
    assert plan.images[0].target.digest == arm.manifest.digest
    assert {d.digest for d in plan.blobs} == {
        d.digest for d in [arm.manifest, arm.config, *arm.layers]
    }
    (entry,) = json.loads(plan.index_json)["manifests"]
    assert entry["platform"] == {"architecture": "arm64", "os": "linux"}
    # OCI with a platform: that manifest becomes the root
    plan = plan_layout(db.content, imgs, platform=Platform.parse("linux/amd64"))
    assert plan.images[0].target.digest == amd.manifest.digest
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        plan_layout(db.content, imgs, platform=Platform.parse("linux/s390x"))
    with pytest.raises(NotFound, match="no manifest for platform linux/arm64"):
        plan_layout(
            db.content, [ArchiveImage(target=amd.manifest)], platform=Platform.parse("linux/arm64")
        )


def test_same_image_same_bytes(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    imgs = [ArchiveImage(target=img.manifest, names=("app:v1",))]
    outs = []
    for fmt in (Format.OCI, Format.OCI, Format.DOCKER, Format.DOCKER):
        out = io.BytesIO()
        save(out, db.content, imgs, format=fmt)
        outs.append(out.getvalue())
    assert outs[0] == outs[1] and outs[2] == outs[3] and outs[0] != outs[2]
    # an archive ends with the two zero blocks, without record padding
    assert outs[0].endswith(bytes(1024)) and len(outs[0]) % 512 == 0


def test_missing_blob_fails_before_anything_is_written(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    path = db.content.blob_path(img.layers[1].digest)
    os.chmod(path.parent, 0o755)
    path.unlink()
    out = io.BytesIO()
    with pytest.raises(NotFound, match=str(img.layers[1].digest)):
        save(out, db.content, [ArchiveImage(target=img.manifest, names=("app:v1",))])
    assert out.getvalue() == b""


def test_corrupt_blob_stops_the_stream_before_the_end_marker(db: Store, tmp_path: Path) -> None:
    img = image(db, tmp_path)
    plan = plan_layout(db.content, [ArchiveImage(target=img.manifest)])
    path = db.content.blob_path(img.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = io.BytesIO()
    with pytest.raises(DigestMismatch, match=str(img.layers[0].digest)):
        write_archive(out, db.content, plan)
    assert not out.getvalue().endswith(bytes(1024))


def test_write_directory_adds_to_a_layout(db: Store, tmp_path: Path) -> None:
    a = image(db, tmp_path, seed=1)
    b = image(db, tmp_path, seed=2)
    lay = tmp_path / "layout"
    write_directory(
        lay, db.content, plan_layout(db.content, [ArchiveImage(target=a.manifest, names=("a:v1",))])
    )
    write_directory(
        lay, db.content, plan_layout(db.content, [ArchiveImage(target=b.manifest, names=("b:v2",))])
    )
    entries = json.loads((lay / "index.json").read_text())["manifests"]
    assert [
        (e["digest"], e["annotations"]["org.opencontainers.image.ref.name"]) for e in entries
    ] == [
        (a.manifest.digest, "v1"),
        (b.manifest.digest, "v2"),
    ]
    # the same tag again moves it
    write_directory(
        lay, db.content, plan_layout(db.content, [ArchiveImage(target=b.manifest, names=("a:v1",))])
    )
    entries = json.loads((lay / "index.json").read_text())["manifests"]
    assert [(e["digest"], e["annotations"]["io.containerd.image.name"]) for e in entries] == [
        (b.manifest.digest, "docker.io/library/b:v2"),
        (b.manifest.digest, "docker.io/library/a:v1"),
    ]
    assert json.loads((lay / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for d in [a.manifest, a.config, *a.layers, b.manifest, b.config, *b.layers]:
        p = lay / "blobs" / "sha256" / d.digest.hex
        assert hashlib.sha256(p.read_bytes()).hexdigest() == d.digest.hex
    assert not [p for p in (lay / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    assert [d.digest for d in validate_layout(lay)] == [b.manifest.digest] * 2


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        capture_output=True,
        timeout=120,
    )


def test_cli_stdout_gives_the_same_bytes_as_a_file(tmp_path: Path) -> None:
    from pallet.metadata.store import open_store

    root = tmp_path / "store"
    db = open_store(root)
    try:
        amd = image(db, tmp_path, seed=1)
        arm = image(db, tmp_path, platform="linux/arm64", seed=2)
        db.images.create(Image(name="example.com/app:v1", target=amd.manifest))
        db.images.create(Image(name="example.com/multi:v1", target=build_index(db, [amd, arm])))
    finally:
        db.close()
    for args in (
        ["example.com/app:v1"],
        ["example.com/app:v1", "--format", "docker"],
        ["example.com/multi:v1", "example.com/app:v1"],
        ["example.com/multi:v1", "--format", "docker", "--platform", "linux/arm64"],
    ):
        f = tmp_path / "out.tar"
        r1 = _cli(root, "save", *args, "-o", str(f))
        assert r1.returncode == 0, r1.stderr
        r2 = _cli(root, "save", *args, "-o", "-")
        assert r2.returncode == 0, r2.stderr
        assert r2.stdout == f.read_bytes()
        assert r1.stdout.decode().split()[0].startswith("sha256:")
        f.unlink()
    r = _cli(root, "save", "example.com/multi:v1", "--format", "docker", "-o", str(f))
    assert r.returncode == 1 and not f.exists() and not list(tmp_path.glob(".out.tar*"))
    assert r.stderr.decode().count("\n") == 1
    assert DOCKER_MANIFEST_LISTS_UNSUPPORTED in r.stderr.decode()
    r = _cli(root, "save", "nope:v1", "-o", str(f))
    assert r.returncode == 1 and r.stderr == b"pallet: error: image nope:v1: not found\n"
    r = _cli(root, "save", "example.com/app:v1", "--platform", "linux", "-o", str(f))
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1


def test_store_labels_stay_out_of_the_layout(db: Store, tmp_path: Path) -> None:
    """Only OCI annotations go into index.json: the names and the root's own annotations, never
    the store's containerd.io/* labels (a distribution source names the registry)."""
    from dataclasses import replace

    img, other = image(db, tmp_path), image(db, tmp_path, seed=1)
    info = db.content.info(img.manifest.digest)
    key = "containerd.io/distribution.source.registry.internal"
    db.content.update(
        replace(info, labels={key: "team/app", "other": "x"}), [f"labels.{key}", "labels.other"]
    )
    created = "org.opencontainers.image.created"
    target = replace(
        img.manifest,
        annotations={created: "2024-01-02T03:04:05Z", key: "team/app", "pallet.io/layer.x": "y"},
    )
    plan = plan_layout(
        db.content,
        [
            ArchiveImage(target=target, names=("example.com/team/app:v1",)),
            ArchiveImage(target=replace(other.manifest, annotations=target.annotations)),
        ],
    )
    named, unnamed = json.loads(plan.index_json)["manifests"]
    assert named["annotations"] == {
        created: "2024-01-02T03:04:05Z",
        "io.containerd.image.name": "example.com/team/app:v1",
        "org.opencontainers.image.ref.name": "v1",
    }
    assert unnamed["annotations"] == {created: "2024-01-02T03:04:05Z"}
    assert b"containerd.io/" not in plan.index_json and b"registry.internal" not in plan.index_json
