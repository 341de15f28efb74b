"""Importing OCI layouts (tarball or directory) and Docker archives into a content store.

Theory of operation
-------------------
:func:`load_archive` makes one pass over the tar stream (gzip or zstd compressed archives are
sniffed and decompressed on the fly) with :class:`~pallet.archive.tarreader.TarReader`; nothing
is extracted to disk. On top of the reader, an image archive is held to a strict policy, checked
as each entry arrives:

* only regular files, directories, symbolic and hard links (devices, FIFOs, sparse files and
  unknown types are :class:`~pallet.errors.Unsupported`);
* names are cleaned (``./`` prefixes and empty components dropped); an absolute name or one with
  a ``..`` component is refused;
* a symbolic link's target, resolved lexically against the link's directory, must stay inside
  the archive; a hard link must name an earlier file;
* the stream must end with the end-of-archive marker, so an archive cut at an entry boundary is
  refused as truncated rather than taken for a shorter complete one.

What each entry is for:

* ``blobs/<alg>/<hex>`` goes straight into the content store under the caller's lease, with the
  name's digest as the expected digest, so every blob is verified while it streams. A blob the
  store has already is skipped (its bytes are known good).
* ``index.json``, ``oci-layout``, ``manifest.json`` and ``repositories`` are kept in memory
  (they are small; at most 16 MiB each).
* Any other file is *spooled* into the content store by its own digest, because a Docker
  archive's ``manifest.json`` (which says which file is a config or a layer) may come after the
  files it names. Files nobody references are only held by the lease and collected with it.
* Symbolic and hard links become aliases of other archive entries (Docker's legacy archives link
  repeated layers); a link that leaves the archive is refused, and links are never followed on a
  file system.

Once the end-of-archive marker is read, the roots are found: the ``index.json`` entries (an OCI
layout, which pallet's and Docker's current archives also are) or else the ``manifest.json``
elements (a Docker archive; a Docker schema 2 manifest is built for each, with layer media types
from the layers' magic bytes). Every root's graph is then checked: each blob must have come in
the archive with the size its descriptor says (non-distributable layers with URLs excepted). An
index may lack some of its manifests, as an archive saved with only the platforms present
locally does; those platforms are then simply absent, as after containerd's import, and every
manifest that is there must be complete.
Only then are the ``containerd.io/gc.ref.content.*`` labels set on manifests and indexes and the
image records created (an existing name is moved to the new target).

Failure leaves no image record. Blobs already written stay on the caller's lease; the caller
deletes it (``leases.delete(lease, sync=True)``) so garbage collection removes them, which is
what ``pallet load`` does. Errors are one line: ``archive: truncated ...``, ``archive entry
../x: path escapes the archive (..)``, ``archive entry blobs/sha256/...: digest mismatch ...``.

Names come from ``io.containerd.image.name``, else from an ``org.opencontainers.image.ref.name``
that is a full reference (containerd's rule: it contains ``/``, ``:`` or ``@``), else from the
Docker ``RepoTags``; ``tag`` adds a name to the archive's only image. An image without any name
is refused rather than imported unreachable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Final, Protocol

from .. import _gojson
from ..archive.tar import BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, REGTYPE, SYMTYPE, display
from ..archive.tarreader import SPARSETYPE, FormatError, TarReader
from ..compression import SNIFF_SIZE, Compression, decompressed_reader, detect
from ..content import Store
from ..errors import AlreadyExists, DigestMismatch, Error, InvalidArgument, NotFound, Unsupported
from ..images import Image, ImageStore, children
from ..labels import GC_REF_CONTENT
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor
from ..oci.digest import ALGORITHMS, Digest
from ..oci.reference import Reference
from .write import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME

__all__ = ["LoadResult", "LoadedImage", "load_archive", "load_directory"]

_META: Final = frozenset({"index.json", "oci-layout", "manifest.json", "repositories"})
_MAX_META: Final = 16 << 20
_MAX_HOPS: Final = 40
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedImage:
    """One imported root and the image names now pointing at it."""

    target: Descriptor
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What an import did: the archive kind (``oci`` or ``docker``), the images, blob stats."""

    format: str
    images: tuple[LoadedImage, ...]
    blobs: int = 0
    bytes: int = 0


class _Reader(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


@dataclass(slots=True)
class _Root:
    target: Descriptor
    names: list[str] = field(default_factory=list)


def _show(name: str) -> str:
    return display(name.encode("utf-8", "surrogateescape"))


def _clean_name(name: str) -> str:
    """``./a//b/`` -> ``a/b``; refuses absolute names and ``..`` components."""
    if name.startswith("/"):
        raise InvalidArgument(f"archive entry {_show(name)}: absolute path outside the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"archive entry {_show(name)}: path escapes the archive (..)")
    return "/".join(parts)


def _link_target(name: str, target: str) -> str:
    """Where the symbolic link ``name`` -> ``target`` points, as an archive path.

    Raises:
        InvalidArgument: the target is absolute or climbs above the archive root.
    """
    outside = InvalidArgument(
        f"archive entry {_show(name)}: symlink to {_show(target)} points outside the archive"
    )
    if target.startswith("/") or not target:
        raise outside
    parts = name.split("/")[:-1]
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise outside
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _blob_digest(name: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` name claims, None for other names."""
    parts = name.split("/")
    if parts[0] != "blobs" or len(parts) != 3:
        if parts[0] == "blobs" and len(parts) > 3:
            raise InvalidArgument(f"archive entry {_show(name)}: not a blob path")
        return None
    if parts[1] not in ALGORITHMS:
        raise InvalidArgument(f"archive entry {_show(name)}: unsupported digest algorithm")
    try:
        return Digest.parse(f"{parts[1]}:{parts[2]}")
    except InvalidArgument:
        raise InvalidArgument(
            f"archive entry {_show(name)}: not a blob path (blobs/<algorithm>/<hex>)"
        ) from None


def _ingest(
    content: Store,
    src: _Reader,
    size: int,
    expected: Digest | None,
    lease: str,
    what: str,
) -> Digest:
    """Copy ``size`` bytes of ``src`` into the store; returns the digest (verified if given)."""
    ref = f"pallet-load-{os.urandom(16).hex()}"
    try:
        w = content.writer(ref, total=size, expected=expected, lease=lease)
    except AlreadyExists:
        # the store has it; the archive's copy is still checked, so a corrupt archive is
        # refused whatever the store holds
        assert expected is not None
        h = expected.hasher()
        while chunk := src.read(_CHUNK):
            h.update(chunk)
        if h.digest() != expected:
            raise DigestMismatch(f"{what}: digest mismatch: content is {h.digest()}") from None
        return expected
    done = False
    try:
        with w:
            if w.offset:
                # containerd reports a blob that another namespace holds as written already
                # (its content sharing); the archive's copy is written and checked anyway
                w.truncate(0)
            n = 0
            while chunk := src.read(_CHUNK):
                w.write(chunk)
                n += len(chunk)
            if n != size:
                raise InvalidArgument(f"{what}: {n} bytes, expected {size}")
            got = w.digest()  # in the expected digest's algorithm
            if expected is not None and got != expected:
                raise DigestMismatch(f"{what}: digest mismatch: content is {got}")
            dgst = expected or got
            try:
                w.commit(size, dgst)
            except AlreadyExists:
                pass
            except DigestMismatch:
                raise DigestMismatch(f"{what}: digest mismatch") from None
            done = True
            return dgst
    finally:
        if not done:
            with contextlib.suppress(Error, OSError):
                content.abort(ref)


# -- archive state ----------------------------------------------------------------------------


class _Archive:
    """What the stream held: metadata files, stored files by path, aliases, digests seen."""

    def __init__(self) -> None:
        self.meta: dict[str, bytes] = {}
        self.files: dict[str, tuple[Digest, int]] = {}
        self.aliases: dict[str, str] = {}
        self.seen: dict[Digest, int] = {}
        self.blobs = 0
        self.bytes = 0

    def resolve(self, name: str) -> str:
        hops = 0
        while name in self.aliases:
            hops += 1
            if hops > _MAX_HOPS:
                raise InvalidArgument(f"archive entry {_show(name)}: too many levels of links")
            name = self.aliases[name]
        return name

    def lookup(self, name: str) -> tuple[Digest, int] | bytes | None:
        real = self.resolve(name)
        if real in self.meta:
            return self.meta[real]
        return self.files.get(real)

    def check_blob_aliases(self) -> None:
        """A link named ``blobs/<alg>/<hex>`` must lead to content with that digest."""
        for name in self.aliases:
            claimed = _blob_digest(name)
            if claimed is None:
                continue
            got = self.lookup(name)
            if not isinstance(got, tuple):
                raise InvalidArgument(f"archive entry {_show(name)}: link to nothing")
            if got[0] != claimed:
                raise DigestMismatch(
                    f"archive entry {_show(name)}: digest mismatch: link leads to {got[0]}"
                )


_REFUSED: Final = {
    CHRTYPE: "character device",
    BLKTYPE: "block device",
    FIFOTYPE: "FIFO",
    SPARSETYPE: "sparse file",
}


def _format_error(exc: FormatError) -> InvalidArgument:
    name = display(exc.entry)
    if exc.truncated:
        where = f" in entry {name}" if exc.entry else ""
        return InvalidArgument(f"archive: truncated (unexpected end of data{where})")
    return InvalidArgument(
        f"archive entry {name}: {exc.reason}" if name else f"archive: {exc.reason}"
    )


def _read_stream(stream: BinaryIO, content: Store, lease: str) -> _Archive:
    arc = _Archive()
    tr = TarReader(decompressed_reader(stream, name="archive"))
    try:
        _read_entries(tr, arc, content, lease)
        if not tr.end_marker:
            raise InvalidArgument("archive: truncated (unexpected end of data)")
        tr.drain()
    except FormatError as exc:
        if not exc.truncated and not (arc.meta or arc.files or arc.blobs):
            # nothing read yet: the stream is not a tar archive, and its first bytes are not
            # an entry name worth quoting
            raise InvalidArgument(f"archive: not a tar archive ({exc.reason})") from None
        raise _format_error(exc) from None
    arc.check_blob_aliases()
    return arc


def _read_entries(tr: TarReader, arc: _Archive, content: Store, lease: str) -> None:
    files: set[str] = set()  # the regular files so far (what a hard link may name)
    while (e := tr.next()) is not None:
        raw = e.name.decode("utf-8", "surrogateescape")
        name = _clean_name(raw)
        what = f"archive entry {_show(raw)}"
        if e.type == DIRTYPE:
            continue
        if e.type in (SYMTYPE, LNKTYPE):
            link = e.linkname.decode("utf-8", "surrogateescape")
            if e.type == SYMTYPE:
                target = _link_target(name, link)
            else:
                try:
                    target = _clean_name(link)
                except InvalidArgument:
                    raise InvalidArgument(
                        f"{what}: hard link to {_show(link)} points outside the archive"
                    ) from None
                if target not in files:
                    raise InvalidArgument(
                        f"{what}: hard link to {_show(link)}, which is not an earlier file of "
                        "the archive"
                    )
                files.add(name)
            if name in _META or name in arc.files:
                arc.meta.pop(name, None)
                arc.files.pop(name, None)
            arc.aliases[name] = target
            continue
        if e.type != REGTYPE:
            kind = _REFUSED.get(e.type, f"entry type {e.type!r}")
            raise Unsupported(f"{what}: {kind} not allowed in an image archive")
        if not name:
            raise InvalidArgument(f"{what}: a file named like the root")
        files.add(name)
        arc.aliases.pop(name, None)
        what = f"archive entry {_show(name)}"
        if name in _META:
            if e.size > _MAX_META:
                raise InvalidArgument(f"{what}: {e.size} bytes is too large")
            data = b""
            while len(data) < e.size:
                data += tr.read(e.size - len(data))
            arc.meta[name] = data
            continue
        claimed = _blob_digest(name)
        dgst = _ingest(content, tr, e.size, claimed, lease, what)
        arc.files[name] = (dgst, e.size)
        arc.seen[dgst] = e.size
        arc.blobs += 1
        arc.bytes += e.size


# -- roots and names --------------------------------------------------------------------------


def _name_of(ann: Mapping[str, str]) -> str | None:
    full = ann.get(ANNOTATION_IMAGE_NAME)
    if full:
        return full
    ref = ann.get(ANNOTATION_REF_NAME, "")
    if ref and any(c in ref for c in "/:@"):
        return ref
    return None


def _normalise(name: str, where: str) -> str:
    try:
        return str(Reference.parse(name))
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: image name {name!r}: {exc}") from None


def _json_doc(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: invalid JSON: {exc}") from None


def _oci_roots(index_json: bytes, oci_layout: bytes | None, where: str) -> list[_Root]:
    if oci_layout is not None:
        lay = _json_doc(oci_layout, f"{where} oci-layout")
        ver = lay.get("imageLayoutVersion") if isinstance(lay, dict) else None
        if not isinstance(ver, str) or not ver.startswith("1."):
            raise InvalidArgument(f"{where} oci-layout: unsupported imageLayoutVersion {ver!r}")
    idx = _json_doc(index_json, f"{where} index.json")
    if not isinstance(idx, dict) or not isinstance(idx.get("manifests") or [], list):
        raise InvalidArgument(f"{where} index.json: not an image index")
    roots: dict[Digest, _Root] = {}
    for e in idx.get("manifests") or []:
        try:
            d = Descriptor.from_json(e)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where} index.json: {exc}") from None
        name = _name_of(d.annotations)
        kept = {
            k: v
            for k, v in d.annotations.items()
            if k not in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME)
        }
        r = roots.setdefault(d.digest, _Root(replace(d, annotations=kept)))
        if name is not None:
            n = _normalise(name, f"{where} index.json")
            if n not in r.names:
                r.names.append(n)
    if not roots:
        raise InvalidArgument(f"{where} index.json: no images")
    return list(roots.values())


def _file(arc: _Archive, path: object, what: str) -> tuple[Digest, int]:
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"archive manifest.json: {what} path {path!r} is not a string")
    try:
        name = _clean_name(path)
    except InvalidArgument:
        raise InvalidArgument(
            f"archive manifest.json: {what} path {path!r} points outside the archive"
        ) from None
    got = arc.lookup(name)
    if not isinstance(got, tuple):
        raise InvalidArgument(f"archive manifest.json: {what} {path!r} is not in the archive")
    return got


_DOCKER_LAYER = {
    Compression.UNCOMPRESSED: mt.DOCKER_LAYER,
    Compression.GZIP: mt.DOCKER_LAYER_GZIP,
    Compression.ZSTD: mt.DOCKER_LAYER_ZSTD,
}


def _docker_roots(arc: _Archive, content: Store, lease: str) -> list[_Root]:
    doc = _json_doc(arc.meta["manifest.json"], "archive manifest.json")
    if not isinstance(doc, list) or not doc:
        raise InvalidArgument("archive manifest.json: not a non-empty list")
    roots: dict[Digest, _Root] = {}
    for el in doc:
        if not isinstance(el, dict):
            raise InvalidArgument("archive manifest.json: an element is not an object")
        cdig, csize = _file(arc, el.get("Config"), "config")
        layers = el.get("Layers") or []
        if not isinstance(layers, list):
            raise InvalidArgument("archive manifest.json: Layers is not a list")
        with content.open(cdig) as f:
            cfg = _json_doc(f.read(_MAX_META), f"archive config {cdig}")
        diff_ids = cfg.get("rootfs", {}).get("diff_ids") if isinstance(cfg, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise InvalidArgument(
                f"archive config {cdig}: rootfs.diff_ids does not match the {len(layers)} layers"
            )
        ldescs = []
        for i, p in enumerate(layers):
            ldig, lsize = _file(arc, p, "layer")
            with content.open(ldig) as f:
                kind = detect(f.read(SNIFF_SIZE))
            if kind is Compression.UNCOMPRESSED and str(diff_ids[i]) != str(ldig):
                raise DigestMismatch(
                    f"archive layer {p!r}: digest {ldig} differs from diff ID {diff_ids[i]}"
                )
            ldescs.append(Descriptor(media_type=_DOCKER_LAYER[kind], digest=ldig, size=lsize))
        cdesc = Descriptor(media_type=mt.DOCKER_CONFIG, digest=cdig, size=csize)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": cdesc.to_json(),
            "layers": [d.to_json() for d in ldescs],
        }
        data = _gojson.marshal(manifest)
        mdig = _ingest(content, _Bytes(data), len(data), None, lease, "archive manifest")
        arc.seen[mdig] = len(data)
        root = roots.setdefault(
            mdig, _Root(Descriptor(media_type=mt.DOCKER_MANIFEST, digest=mdig, size=len(data)))
        )
        tags = el.get("RepoTags") or []
        if not isinstance(tags, list):
            raise InvalidArgument("archive manifest.json: RepoTags is not a list")
        for t in tags:
            n = _normalise(str(t), "archive manifest.json")
            if n not in root.names:
                root.names.append(n)
    return list(roots.values())


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        out = self._data[self._pos : end]
        self._pos += len(out)
        return out


# -- verification and records -----------------------------------------------------------------


def _foreign(d: Descriptor) -> bool:
    return bool(d.urls) and mt.is_layer(d.media_type)


def _present_graph(content: Store, root: _Root, seen: Mapping[Digest, int]) -> list[Descriptor]:
    """Check ``root``'s graph against what the archive held; returns the manifests and indexes.

    Everything a present manifest needs must be there (non-distributable layers with URLs
    excepted). An index may lack some of its manifests, as a multi-platform archive that was
    saved with only the local platforms does (containerd imports those too); at least one
    manifest must be complete.
    """
    what = root.names[0] if root.names else root.target.digest
    stack: list[tuple[Descriptor, bool]] = [(root.target, False)]
    visited: set[Digest] = set()
    nodes: list[Descriptor] = []
    manifests = 0
    while stack:
        d, optional = stack.pop()
        if d.digest in visited:
            continue
        visited.add(d.digest)
        size = seen.get(d.digest)
        if size is None:
            if _foreign(d) or optional:
                continue
            raise InvalidArgument(
                f"archive: blob {d.digest} ({d.media_type}) of image {what} is missing "
                "from the archive"
            )
        if size != d.size:
            raise DigestMismatch(
                f"archive: blob {d.digest} has {size} bytes, its descriptor says {d.size}"
            )
        if mt.is_manifest(d.media_type) or mt.is_index(d.media_type):
            nodes.append(d)
            manifests += mt.is_manifest(d.media_type)
            optional_kids = mt.is_index(d.media_type)
            stack.extend((c, optional_kids) for c in reversed(children(content, d)))
    if not manifests:
        raise InvalidArgument(f"archive: no manifest of image {what} is in the archive")
    return nodes


def _gc_labels(content: Store, nodes: Sequence[Descriptor], seen: Mapping[Digest, int]) -> None:
    """containerd's ``gc.ref.content`` labels from each manifest and index to its children."""
    done: set[Digest] = set()
    for d in nodes:
        if d.digest in done:
            continue
        done.add(d.digest)
        labels: dict[str, str] = {}
        kids = [c for c in children(content, d) if c.digest in seen]
        if mt.is_manifest(d.media_type):
            with content.open(d) as f:
                doc = _json_doc(f.read(_MAX_META), f"manifest {d.digest}")
            cfg = doc.get("config") if isinstance(doc, dict) else None
            cdig = cfg.get("digest") if isinstance(cfg, dict) else None
            n = 0
            for c in kids:
                if c.digest == cdig and f"{GC_REF_CONTENT}.config" not in labels:
                    labels[f"{GC_REF_CONTENT}.config"] = str(c.digest)
                else:
                    labels[f"{GC_REF_CONTENT}.l.{n}"] = str(c.digest)
                    n += 1
        else:
            for i, c in enumerate(kids):
                labels[f"{GC_REF_CONTENT}.m.{i}"] = str(c.digest)
        if labels:
            info = content.info(d.digest)
            content.update(replace(info, labels=labels), [f"labels.{k}" for k in labels])


def _finish(
    fmt: str,
    roots: list[_Root],
    content: Store,
    images: ImageStore,
    seen: Mapping[Digest, int],
    tag: str | None,
    stats: tuple[int, int],
) -> LoadResult:
    nodes = [n for r in roots for n in _present_graph(content, r, seen)]
    if tag is not None:
        if len(roots) != 1:
            raise InvalidArgument(
                f"archive: a tag names one image, and the archive holds {len(roots)}"
            )
        n = _normalise(tag, "tag")
        if n not in roots[0].names:
            roots[0].names.append(n)
    for r in roots:
        if not r.names:
            raise InvalidArgument(
                f"archive image {r.target.digest}: has no name; give it one (pallet load --tag)"
            )
    _gc_labels(content, nodes, seen)
    out = []
    for r in roots:
        for name in r.names:
            img = Image(name=name, target=r.target)
            try:
                images.create(img)
            except AlreadyExists:
                images.update(img, ["target"])
        out.append(LoadedImage(target=r.target, names=tuple(r.names)))
    return LoadResult(format=fmt, images=tuple(out), blobs=stats[0], bytes=stats[1])


def load_archive(
    stream: BinaryIO,
    content: Store,
    images: ImageStore,
    *,
    lease: str,
    tag: str | None = None,
) -> LoadResult:
    """Import an OCI-layout tarball or a Docker archive read from ``stream``.

    Args:
        stream: the archive (uncompressed, gzip or zstd); read once, to its end.
        content: the content store; every blob is written under ``lease``.
        images: where the image records go (only after everything is verified).
        lease: an existing lease id; the caller deletes it afterwards (with ``sync=True`` on
            failure, so what was written is collected).
        tag: an extra name for the archive's single image.

    Raises:
        InvalidArgument: truncated or malformed archive, a path or link outside the archive, a
            blob missing, an image without a name.
        DigestMismatch: a blob whose bytes do not match its digest or size.
        Unsupported: an entry type image archives do not use.
    """
    arc = _read_stream(stream, content, lease)
    if "index.json" in arc.meta or isinstance(arc.lookup("index.json"), tuple):
        fmt = "oci"
        idx = _meta_bytes(arc, content, "index.json")
        lay = _meta_bytes(arc, content, "oci-layout") if arc.lookup("oci-layout") else None
        roots = _oci_roots(idx, lay, "archive")
    elif arc.lookup("manifest.json") is not None:
        fmt = "docker"
        arc.meta["manifest.json"] = _meta_bytes(arc, content, "manifest.json")
        roots = _docker_roots(arc, content, lease)
    else:
        raise InvalidArgument("archive: neither an OCI layout (index.json) nor a Docker archive")
    return _finish(fmt, roots, content, images, arc.seen, tag, (arc.blobs, arc.bytes))


def _meta_bytes(arc: _Archive, content: Store, name: str) -> bytes:
    got = arc.lookup(name)
    if isinstance(got, bytes):
        return got
    if got is None:
        raise InvalidArgument(f"archive: {name} missing")
    with content.open(got[0]) as f:
        return f.read(_MAX_META)


# -- directories ------------------------------------------------------------------------------

_O_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_in(dirfd: int, parts: Sequence[str], what: str) -> int:
    """Open ``parts`` below ``dirfd`` without following any symbolic link."""
    fd = dirfd
    try:
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            nfd = os.open(p, _O_FILE if last else _O_DIR, dir_fd=fd)
            if fd != dirfd:
                os.close(fd)
            fd = nfd
    except FileNotFoundError:
        if fd != dirfd:
            os.close(fd)
        raise NotFound(f"{what}: not found") from None
    except OSError as exc:
        if fd != dirfd:
            os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InvalidArgument(f"{what}: a symbolic link or not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArgument(f"{what}: not a regular file")
    return fd


def _read_small(dirfd: int, name: str, where: str) -> bytes | None:
    try:
        fd = _open_in(dirfd, [name], f"{where} {name}")
    except NotFound:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_META + 1)
    if len(data) > _MAX_META:
        raise InvalidArgument(f"{where} {name}: too large")
    return data


def load_directory(
    path: str | os.PathLike[str],
    content: Store,
    images: ImageStore,
    *,
    lease: str,
    tag: str | None = None,
) -> LoadResult:
    """Import an OCI layout directory (``oci-layout``, ``index.json``, ``blobs/``).

    Only the blobs reachable from ``index.json`` are read, each opened below the directory
    without following symbolic links and verified against its digest while it is copied.
    Arguments, errors and the lease contract are those of :func:`load_archive`.
    """
    where = f"layout {os.fspath(path)}:"
    try:
        rootfd = os.open(path, _O_DIR)
    except FileNotFoundError:
        raise NotFound(f"layout {os.fspath(path)}: not found") from None
    try:
        lay = _read_small(rootfd, "oci-layout", where)
        idx = _read_small(rootfd, "index.json", where)
        if lay is None or idx is None:
            raise InvalidArgument(f"{where} not an OCI layout (oci-layout or index.json missing)")
        roots = _oci_roots(idx, lay, where.rstrip(":"))
        seen: dict[Digest, int] = {}
        nbytes = 0
        # an index's manifests may be missing (the platforms not saved); see _present_graph
        stack = [(r.target, False) for r in roots]
        while stack:
            d, optional = stack.pop()
            if d.digest in seen:
                continue
            what = f"{where} blob {d.digest}"
            try:
                fd = _open_in(rootfd, ["blobs", d.digest.algorithm, d.digest.hex], what)
            except NotFound:
                if _foreign(d) or optional:
                    continue
                raise InvalidArgument(f"{what}: missing from the layout") from None
            with os.fdopen(fd, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size != d.size:
                    raise DigestMismatch(f"{what}: {size} bytes, its descriptor says {d.size}")
                _ingest(content, f, size, d.digest, lease, what)
            seen[d.digest] = size
            nbytes += size
            stack.extend((c, mt.is_index(d.media_type)) for c in children(content, d))
    finally:
        os.close(rootfd)
    return _finish("oci", roots, content, images, seen, tag, (len(seen), nbytes))
