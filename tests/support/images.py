"""Build real images straight into a store (ggcr's ``random`` in spirit), and compare trees.

One builder serves every test: :func:`build_image` makes layers the way the exporter makes them
(:func:`pallet.archive.diff.write_diff` of a directory, or given tar bytes, streamed through
:func:`pallet.compression.pipeline.write_layer`); :func:`random_image` makes layers of random
bytes of exact sizes, stored uncompressed, for tests of transfers and garbage collection. Both
write a config with ``rootfs.diff_ids`` and a manifest with ``containerd.io/gc.ref.content.*``
labels to its children; :func:`build_index` puts several manifests (one per platform) in an
index. Both media-type families are available (``oci=``). A *store* here is anything with a
``content`` store: the embedded store or a containerd client.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from pallet.archive.diff import write_diff
from pallet.compression import Compression
from pallet.compression.pipeline import write_layer
from pallet.content import Store as ContentStore
from pallet.errors import AlreadyExists
from pallet.metadata.store import open_store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import Digest

__all__ = [
    "GC_REF",
    "BuiltImage",
    "HasContent",
    "Interop",
    "build_image",
    "build_index",
    "build_interop",
    "graph",
    "make_tree",
    "put",
    "random_image",
    "tree_state",
]

GC_REF = "containerd.io/gc.ref.content"


class HasContent(Protocol):
    """A store the builders write into: the embedded store or a containerd client."""

    @property
    def content(self) -> ContentStore: ...


CREATED = "2024-01-02T03:04:05Z"


@dataclass
class BuiltImage:
    manifest: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    diff_ids: list[Digest]
    platform: Platform
    trees: list[Path] = field(default_factory=list)

    @property
    def blobs(self) -> list[Descriptor]:
        """The manifest's children: the config, then the layers."""
        return [self.config, *self.layers]


def put(
    store: HasContent,
    data: bytes,
    *,
    labels: dict[str, str] | None = None,
    lease: str | None = None,
    media_type: str = "application/octet-stream",
) -> Descriptor:
    """Write one blob (already there: only its descriptor); returns its descriptor."""
    dg = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    try:
        with store.content.writer(f"put-{dg}-{os.getpid()}", lease=lease) as w:
            w.write(data)
            w.commit(len(data), dg, labels=labels)
    except AlreadyExists:
        pass
    return Descriptor(media_type=media_type, digest=dg, size=len(data))


def graph(store: HasContent, desc: Descriptor) -> set[str]:
    """The digests of ``desc`` and everything it references (pallet's own walker)."""
    from pallet.images import walk

    return {d.digest for d in walk(store.content, desc)}


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
    store: HasContent,
    layers: Sequence[Path | bytes],
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
            produce, store.content, compression=compression, oci=oci, lease=lease, threads=1
        )
        descs.append(res.descriptor)
        diff_ids.append(res.diff_id)
    img = _commit_image(store, descs, diff_ids, oci=oci, platform=platform, cmd=cmd, lease=lease)
    img.trees = [ly for ly in layers if isinstance(ly, Path)]
    return img


def random_image(
    store: HasContent,
    seed: int = 0,
    *,
    sizes: Sequence[int] = (1000, 1000),
    shared: Sequence[bytes] = (),
    platform: str = "linux/amd64",
    lease: str | None = None,
) -> BuiltImage:
    """An OCI image with a layer of random bytes (from ``seed``) per entry of ``sizes``, then
    the ``shared`` layers. Layers are stored uncompressed, so each blob has exactly the size
    asked for and its diff ID is its digest. They are not tars: for transfers and garbage
    collection, not for unpacking."""
    rnd = random.Random(seed)
    blobs = [rnd.randbytes(n) for n in sizes] + list(shared)
    descs = [put(store, b, lease=lease, media_type=mt.OCI_LAYER) for b in blobs]
    diff_ids = [d.digest for d in descs]
    return _commit_image(store, descs, diff_ids, oci=True, platform=platform, lease=lease)


def _commit_image(
    store: HasContent,
    layers: list[Descriptor],
    diff_ids: list[Digest],
    *,
    oci: bool,
    platform: str,
    cmd: list[str] | None = None,
    lease: str | None = None,
) -> BuiltImage:
    """The config and manifest over ``layers``, written after them (children first)."""
    plat = Platform.parse(platform)
    cfg_obj: dict[str, object] = {
        "architecture": plat.architecture,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd or ["/bin/sh"],
        },
        "created": CREATED,
        "history": [
            {"created": CREATED, "created_by": f"pallet test layer {i}"} for i in range(len(layers))
        ],
        "os": plat.os,
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
    }
    if plat.variant:
        cfg_obj["variant"] = plat.variant
    cfg = put(
        store,
        json.dumps(cfg_obj, separators=(",", ":")).encode(),
        lease=lease,
        media_type=mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": cfg.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    labels = {f"{GC_REF}.config": str(cfg.digest)}
    labels.update({f"{GC_REF}.l.{i}": str(d.digest) for i, d in enumerate(layers)})
    m = put(
        store,
        json.dumps(manifest, separators=(",", ":")).encode(),
        labels=labels,
        lease=lease,
        media_type=mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
    )
    return BuiltImage(manifest=m, config=cfg, layers=layers, diff_ids=diff_ids, platform=plat)


def build_index(
    store: HasContent,
    images: Sequence[BuiltImage],
    *,
    oci: bool = True,
    lease: str | None = None,
) -> Descriptor:
    """An index (OCI) or manifest list (Docker) over ``images``, each with its platform."""
    entries = [replace(i.manifest, platform=i.platform).to_json() for i in images]
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST,
        "manifests": entries,
    }
    labels = {f"{GC_REF}.m.{i}": e["digest"] for i, e in enumerate(entries)}
    return put(
        store,
        json.dumps(index, separators=(",", ":")).encode(),
        labels=labels,
        lease=lease,
        media_type=mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST,
    )


# -- a shared set of images and archives for the interop tests --------------------------------

INTEROP_PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass
class Interop:
    """A store with images of both media-type families (single and multi-platform) and the
    archives ``pallet save`` makes of them, written on first use.

    Keys: ``oci`` / ``docker`` (linux/amd64, two gzip layers, busybox inside), ``oci-zstd``,
    ``multi`` (OCI index amd64 + arm64) and ``multi-docker`` (Docker manifest list).
    """

    root: Path
    work: Path
    built: dict[str, list[BuiltImage]]
    roots: dict[str, Descriptor]
    expected: dict[str, Path]  # platform -> the merged root filesystem
    _cache: dict[tuple[str, str], Path] = field(default_factory=dict)

    def name(self, key: str) -> str:
        return f"example.com/interop/{key}:v1"

    def archive(self, key: str, fmt: str = "oci", platform: str | None = None) -> Path:
        """``pallet save`` of image ``key`` in format ``fmt`` (cached)."""
        import subprocess
        import sys

        ck = (key, f"{fmt}-{platform}")
        if ck not in self._cache:
            out = self.work / f"{key}-{fmt}-{(platform or 'all').replace('/', '-')}.tar"
            args = [sys.executable, "-m", "pallet.cli", "--root", str(self.root), "save"]
            args += [self.name(key), "--format", fmt, "-o", str(out)]
            if platform:
                args += ["--platform", platform]
            r = subprocess.run(args, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            self._cache[ck] = out
        return self._cache[ck]

    def layout(self, key: str, platform: str | None = None) -> Path:
        """An OCI layout directory of ``key`` written by :func:`pallet.layout.write_directory`;
        the image's tag is ``v1``."""
        from pallet.layout import ArchiveImage, plan_layout, write_directory

        ck = (key, f"dir-{platform}")
        if ck not in self._cache:
            out = self.work / f"{key}-layout-{(platform or 'all').replace('/', '-')}"
            db = open_store(self.root)
            try:
                plan = plan_layout(
                    db.content,
                    [ArchiveImage(target=self.roots[key], names=(self.name(key),))],
                    platform=Platform.parse(platform) if platform else None,
                )
                write_directory(out, db.content, plan)
            finally:
                db.close()
            self._cache[ck] = out
        return self._cache[ck]


def build_interop(base: Path) -> Interop:
    from pallet.images import Image

    base.mkdir(parents=True, exist_ok=True)
    trees: dict[str, list[Path]] = {}
    expected: dict[str, Path] = {}
    for i, plat in enumerate(INTEROP_PLATFORMS):
        slug = plat.replace("/", "-")
        tree = make_tree(base / f"tree-{slug}", i, busybox=plat == "linux/amd64")
        extra = base / f"extra-{slug}"
        (extra / "opt" / "app").mkdir(parents=True)
        (extra / "opt" / "app" / "config.txt").write_text(f"platform {plat}\n")
        (extra / "etc").mkdir()
        (extra / "etc" / "hostname").write_text(f"overridden on {plat}\n")
        trees[plat] = [tree, extra]
        exp = base / f"expected-{slug}"
        shutil.copytree(tree, exp, symlinks=True)
        shutil.copytree(extra, exp, symlinks=True, dirs_exist_ok=True)
        expected[plat] = exp
    db = open_store(base / "store")
    try:
        cmd = ["/bin/busybox", "echo", "hello-pallet"]
        built: dict[str, list[BuiltImage]] = {}
        roots: dict[str, Descriptor] = {}
        for key, oci, comp in (
            ("oci", True, Compression.GZIP),
            ("docker", False, Compression.GZIP),
            ("oci-zstd", True, Compression.ZSTD),
        ):
            img = build_image(db, trees["linux/amd64"], oci=oci, compression=comp, cmd=cmd)
            built[key], roots[key] = [img], img.manifest
        for key, oci in (("multi", True), ("multi-docker", False)):
            imgs = [
                built["oci" if oci else "docker"][0],
                build_image(db, trees["linux/arm64"], oci=oci, platform="linux/arm64", cmd=cmd),
            ]
            built[key], roots[key] = imgs, build_index(db, imgs, oci=oci)
        for key, root in roots.items():
            db.images.create(Image(name=f"example.com/interop/{key}:v1", target=root))
    finally:
        db.close()
    work = base / "work"
    work.mkdir()
    return Interop(root=base / "store", work=work, built=built, roots=roots, expected=expected)
