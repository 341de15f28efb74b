"""Build real images from directory trees straight into a store, and compare trees.

Layers are made the way the exporter makes them: :func:`pallet.archive.diff.write_diff` streamed
through :func:`pallet.compression.pipeline.write_layer`. A config carries ``rootfs.diff_ids``,
the manifest ``containerd.io/gc.ref.content.*`` labels, and :func:`build_index` puts several
manifests (one per platform) in an index. Both media-type families are available (``oci=``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pallet.archive.diff import write_diff
from pallet.compression import Compression
from pallet.compression.pipeline import write_layer
from pallet.metadata.db import DB
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import Digest
from support.store import put

__all__ = [
    "BuiltImage",
    "build_image",
    "build_index",
    "make_tree",
    "tree_state",
]

CREATED = "2024-01-02T03:04:05Z"


@dataclass
class BuiltImage:
    manifest: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    diff_ids: list[Digest]
    platform: Platform
    trees: list[Path] = field(default_factory=list)


def make_tree(root: Path, seed: int = 0, *, busybox: bool = False) -> Path:
    """A small tree with the kinds of entries that matter: dirs of several modes, files
    (empty, executable, read-only, unicode name), relative and absolute symlinks, a hard link."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text(f"pallet-{seed}\n")
    (root / "etc" / "motd").write_bytes(bytes(range(256)) * (seed + 3))
    (root / "bin").mkdir()
    if busybox:
        shutil.copy2("/bin/busybox", root / "bin" / "busybox")
        os.symlink("busybox", root / "bin" / "sh")
        os.symlink("busybox", root / "bin" / "echo")
    else:
        (root / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
        os.chmod(root / "bin" / "tool", 0o755)
    (root / "private").mkdir(mode=0o700)
    (root / "private" / "secret").write_text("s\n")
    os.chmod(root / "private" / "secret", 0o600)
    os.chmod(root / "private", 0o700)
    (root / "data").mkdir()
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "ro.txt").write_text("read only\n")
    os.chmod(root / "data" / "ro.txt", 0o444)
    (root / "data" / "größe café.txt").write_text("unicode\n")
    (root / "data" / f"blob-{seed}.bin").write_bytes(hashlib.sha256(b"%d" % seed).digest() * 512)
    os.link(root / "data" / "ro.txt", root / "data" / "ro-link.txt")
    os.symlink("../etc/hostname", root / "data" / "rel-link")
    os.symlink("/etc/hostname", root / "data" / "abs-link")
    (root / "deep" / "a" / "b" / "c").mkdir(parents=True)
    (root / "deep" / "a" / "b" / "c" / "leaf").write_text("leaf\n")
    return root


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Path -> (kind, permission bits, content digest or link target), for comparisons."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", perm)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("f", perm, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("?", st.st_mode)
    return out


def _produce_dir(path: Path):  # type: ignore[no-untyped-def]
    def produce(sink):  # type: ignore[no-untyped-def]
        write_diff(None, path, sink)

    return produce


def _produce_bytes(data: bytes):  # type: ignore[no-untyped-def]
    def produce(sink):  # type: ignore[no-untyped-def]
        sink.write(data)

    return produce


def build_image(
    db: DB,
    layers: list[Path | bytes],
    *,
    oci: bool = True,
    compression: Compression = Compression.GZIP,
    platform: str = "linux/amd64",
    cmd: list[str] | None = None,
    lease: str | None = None,
) -> BuiltImage:
    """An image whose layers are ``layers`` (a directory: the whole tree; bytes: a tar)."""
    descs: list[Descriptor] = []
    diff_ids: list[Digest] = []
    for ly in layers:
        produce = _produce_dir(ly) if isinstance(ly, Path) else _produce_bytes(ly)
        res = write_layer(
            produce, db.content, compression=compression, oci=oci, lease=lease, threads=1
        )
        descs.append(res.descriptor)
        diff_ids.append(res.diff_id)
    plat = Platform.parse(platform)
    cfg_obj: dict[str, object] = {
        "architecture": plat.architecture,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd or ["/bin/sh"],
        },
        "created": CREATED,
        "history": [
            {"created": CREATED, "created_by": f"pallet test layer {i}"} for i in range(len(descs))
        ],
        "os": plat.os,
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
    }
    if plat.variant:
        cfg_obj["variant"] = plat.variant
    cfg = put(
        db,
        json.dumps(cfg_obj, separators=(",", ":")).encode(),
        lease=lease,
        media_type=mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": cfg.to_json(),
        "layers": [d.to_json() for d in descs],
    }
    labels = {"containerd.io/gc.ref.content.config": str(cfg.digest)}
    labels.update(
        {f"containerd.io/gc.ref.content.l.{i}": str(d.digest) for i, d in enumerate(descs)}
    )
    m = put(
        db,
        json.dumps(manifest, separators=(",", ":")).encode(),
        labels=labels,
        lease=lease,
        media_type=mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
    )
    trees = [ly for ly in layers if isinstance(ly, Path)]
    return BuiltImage(
        manifest=m, config=cfg, layers=descs, diff_ids=diff_ids, platform=plat, trees=trees
    )


def build_index(
    db: DB, images: list[BuiltImage], *, oci: bool = True, lease: str | None = None
) -> Descriptor:
    """An index (OCI) or manifest list (Docker) over ``images``, each with its platform."""
    from dataclasses import replace

    entries = [replace(i.manifest, platform=i.platform).to_json() for i in images]
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST,
        "manifests": entries,
    }
    labels = {f"containerd.io/gc.ref.content.m.{i}": e["digest"] for i, e in enumerate(entries)}
    return put(
        db,
        json.dumps(index, separators=(",", ":")).encode(),
        labels=labels,
        lease=lease,
        media_type=mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST,
    )
