"""Writing OCI image layouts (tarball or directory) and Docker archives from a content store.

Theory of operation
-------------------
Writing happens in two steps, so that every check that can fail runs before the first byte goes
out (a half-written stream on standard output cannot be taken back):

1. :func:`plan_layout` resolves the roots: it applies the platform choice, merges images that
   share a root, normalises names, walks every root's graph and checks that each blob is in the
   store with the size its descriptor says. It produces the three small JSON files
   (``index.json``, ``oci-layout`` and, for :attr:`Format.DOCKER`, ``manifest.json``) and the
   sorted, de-duplicated list of blobs. Nothing is written.
2. :func:`write_archive` streams the tarball to any binary sink (a file, a pipe, standard output)
   through :class:`~pallet.archive.tar.TarWriter`, reading each blob from the store in 1 MiB
   chunks: no temporary copy, memory bounded by the tar writer's buffer. Each blob is hashed as it
   passes and a blob that does not hash to its digest aborts the stream (before the end-of-archive
   marker, so readers see a truncated archive, never a wrong one). :func:`write_directory` writes
   the same layout as a directory instead (BuildKit's ``tar=false``).

Archive layout (spec/exporter.md §7.3, containerd ``images/archive``)
--------------------------------------------------------------------
* Entries sorted by name, each once: ``blobs/`` and ``blobs/<alg>/`` (0755), ``blobs/<alg>/<hex>``
  (0444), ``index.json`` (0644), ``manifest.json`` (0644, Docker format only), ``oci-layout``
  (0444). Plain headers: mtime 0, owner 0:0, no user or group names. The same images therefore
  always give the same bytes.
* ``index.json``: ``{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
  "manifests":[...]}``, one entry per name, all with the root's digest, annotated
  ``io.containerd.image.name`` (the full normalised name) and ``org.opencontainers.image.ref.name``
  (the tag; the full name for a by-digest name); one entry without names for an image without a
  name. The root descriptor's own annotations are kept (the exporter puts
  ``org.opencontainers.image.created`` there). The store's labels are not annotations and stay
  out: a ``containerd.io/distribution.source.<registry>`` label would hand the registries an
  image came through (hostnames of an internal network) to whoever gets the tarball, so no
  ``containerd.io/`` key is written, whichever way it reached the descriptor.
* ``manifest.json`` (Docker): ``[{"Config":"blobs/sha256/<hex>","RepoTags":[...]|null,
  "Layers":["blobs/sha256/<hex>",...]}]``, one element per distinct manifest, RepoTags in Docker's
  familiar form (``foo:latest``). Together with the blob files this is what ``docker load``
  reads; the OCI files make the same tarball a valid OCI layout for skopeo, umoci and containerd.
  There is no ``repositories`` file. A Docker archive holds one manifest per image, so an index
  root needs a platform; without one the error is BuildKit's ``docker exporter does not
  currently support exporting manifest lists``. Either media-type family (OCI or Docker) is
  written as stored: ``docker load`` reads layer files whatever their declared type.
* The OCI format keeps an index root whole (every platform's blobs) unless a platform is chosen,
  in which case that platform's manifest becomes the root.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from .. import _gojson, atomicfile
from ..archive.tar import DIRTYPE, REGTYPE, Sink, TarWriter
from ..content import Provider
from ..errors import DigestMismatch, InvalidArgument, NotFound, Unsupported
from ..images import read_json, walk
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from ..oci.reference import Reference
from ._select import normalize, select_manifest

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "DOCKER_MANIFEST_LISTS_UNSUPPORTED",
    "ArchiveImage",
    "Format",
    "LayoutPlan",
    "plan_layout",
    "save",
    "write_archive",
    "write_directory",
]

#: containerd's annotation: the full image name (``docker.io/library/foo:latest``)
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
#: OCI's annotation: the tag (``latest``), or the full name for a by-digest name
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
#: key prefixes of the store's labels (containerd's and pallet's own), never written as annotations
_STORE_LABELS = ("containerd.io/", "pallet.io/")
#: BuildKit's error text for an index root in a Docker archive (spec/exporter.md §7.1)
DOCKER_MANIFEST_LISTS_UNSUPPORTED = (
    "docker exporter does not currently support exporting manifest lists"
)

_CHUNK = 1 << 20
_OCI_LAYOUT = _gojson.marshal({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})


class Format(enum.StrEnum):
    """Which archive: an OCI layout, or a Docker archive (which is an OCI layout too)."""

    OCI = "oci"
    DOCKER = "docker"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveImage:
    """One root to put in an archive and the names it goes by (any order; duplicates dropped).

    ``target`` is the root descriptor as it should appear in ``index.json`` (its annotations are
    kept); ``names`` are image references, normalised while planning (``foo`` becomes
    ``docker.io/library/foo:latest``).
    """

    target: Descriptor
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutPlan:
    """Everything :func:`write_archive` / :func:`write_directory` need, checked and encoded.

    Attributes:
        format: the archive format.
        images: the roots after platform selection, with normalised names.
        blobs: every blob to write, sorted by digest, each once.
        index_json, manifest_json, oci_layout: the metadata files (``manifest_json`` is None
            for the OCI format).
    """

    format: Format
    images: tuple[ArchiveImage, ...]
    blobs: tuple[Descriptor, ...]
    index_json: bytes
    manifest_json: bytes | None
    oci_layout: bytes = field(default=_OCI_LAYOUT)

    @property
    def size(self) -> int:
        """Total bytes of blob data (what dominates the archive's size)."""
        return sum(b.size for b in self.blobs)


# -- planning ---------------------------------------------------------------------------------


def _normalise(name: str) -> Reference:
    try:
        return Reference.parse(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"image name {name!r}: {exc}") from None


def _ref_name(ref: Reference) -> str:
    return ref.tag if ref.tag else str(ref)


def _familiar_tag(ref: Reference) -> str | None:
    """Docker's RepoTags form, or None for a name without a tag (by digest only)."""
    if not ref.tag:
        return None
    return Reference(registry=ref.registry, repository=ref.repository, tag=ref.tag).familiar()


def _config_platform(provider: Provider, manifest: Descriptor) -> Platform | None:
    obj = read_json(provider, manifest)
    cfg = obj.get("config")
    if not isinstance(cfg, Mapping):
        return None
    try:
        conf = read_json(provider, Descriptor.from_json(cfg))
    except (InvalidArgument, NotFound):
        return None
    return Platform.from_json(conf)


def _choose(
    provider: Provider, img: ArchiveImage, fmt: Format, platform: Platform | None
) -> Descriptor:
    """The root to write for ``img``: the image's root, or the chosen platform's manifest."""
    t = img.target
    if mt.is_index(t.media_type):
        if platform is None:
            if fmt is Format.DOCKER:
                raise Unsupported(DOCKER_MANIFEST_LISTS_UNSUPPORTED)
            return t
        m = select_manifest(provider, t, platform)
        return replace(m, annotations=dict(t.annotations))
    if platform is not None and mt.is_manifest(t.media_type):
        have = _config_platform(provider, t)
        want = normalize(platform) or platform
        got = normalize(have) if have is not None else None
        if got is not None and (
            got.os != want.os
            or got.architecture != want.architecture
            or (want.variant and got.variant != want.variant)
        ):
            raise NotFound(f"image {t.digest}: no manifest for platform {want} (has {got})")
    return t


def _blob_size(provider: Provider, desc: Descriptor) -> int:
    with provider.open(desc) as f:
        return f.seek(0, os.SEEK_END)


def _layer_paths(provider: Provider, manifest: Descriptor, present: set[str]) -> list[str]:
    layers = read_json(provider, manifest).get("layers") or []
    if not isinstance(layers, list):
        raise InvalidArgument(f"manifest {manifest.digest}: layers is not a list")
    out = []
    for layer in layers:
        d = Descriptor.from_json(layer)
        if d.digest in present:
            out.append(_blob_name(d.digest))
    return out


def _blob_name(dgst: Digest) -> str:
    return f"blobs/{dgst.algorithm}/{dgst.hex}"


def plan_layout(
    provider: Provider,
    images: Sequence[ArchiveImage],
    *,
    format: Format = Format.OCI,
    platform: Platform | None = None,
) -> LayoutPlan:
    """Check and encode an archive of ``images`` (see the module docstring); writes nothing.

    Args:
        provider: the content store holding every blob.
        images: the roots and their names, in ``index.json`` order.
        format: :attr:`Format.OCI` or :attr:`Format.DOCKER`.
        platform: pick this platform's manifest out of index roots.

    Raises:
        InvalidArgument: no image, a name that is not a reference, a malformed manifest.
        Unsupported: an index root in a Docker archive without a platform.
        NotFound: a blob is missing from the store, or no manifest matches ``platform``.
        DigestMismatch: a blob's size in the store differs from its descriptor.
    """
    fmt = Format(format)
    if not images:
        raise InvalidArgument("archive: no image to write")
    # one root per digest, names merged in order
    roots: dict[Digest, tuple[Descriptor, list[Reference]]] = {}
    for img in images:
        root = _choose(provider, img, fmt, platform)
        if fmt is Format.DOCKER and not mt.is_manifest(root.media_type):
            raise Unsupported(DOCKER_MANIFEST_LISTS_UNSUPPORTED)
        refs = [_normalise(n) for n in img.names]
        if root.digest in roots:
            have = roots[root.digest][1]
            have.extend(r for r in refs if r not in have)
        else:
            uniq: list[Reference] = []
            uniq.extend(r for r in refs if r not in uniq)
            roots[root.digest] = (root, uniq)

    blobs: dict[Digest, Descriptor] = {}
    for root, refs in roots.values():
        name = str(refs[0]) if refs else str(root.digest)
        for d in walk(provider, root):
            if d.digest in blobs:
                continue
            try:
                size = _blob_size(provider, d)
            except NotFound:
                if d.urls:  # non-distributable layer kept elsewhere: not ours to ship
                    continue
                raise NotFound(
                    f"content {d.digest}: not found (image {name} is incomplete in the store)"
                ) from None
            if size != d.size:
                raise DigestMismatch(
                    f"content {d.digest}: {size} bytes in the store, descriptor says {d.size}"
                )
            blobs[d.digest] = replace(d, annotations={}, platform=None)

    entries: list[dict[str, object]] = []
    out_images: list[ArchiveImage] = []
    docker: list[dict[str, object]] = []
    present = {str(d) for d in blobs}
    for root, refs in roots.values():
        base = {k: v for k, v in root.annotations.items() if not k.startswith(_STORE_LABELS)}
        if refs:
            for r in refs:
                ann = {**base, ANNOTATION_IMAGE_NAME: str(r), ANNOTATION_REF_NAME: _ref_name(r)}
                entries.append(replace(root, annotations=ann).to_json())
        else:
            entries.append(replace(root, annotations=base).to_json())
        out_images.append(ArchiveImage(target=root, names=tuple(str(r) for r in refs)))
        if fmt is Format.DOCKER:
            cfg = read_json(provider, root).get("config")
            if not isinstance(cfg, Mapping):
                raise InvalidArgument(f"manifest {root.digest}: no config")
            tags: list[str] = []
            for r in refs:
                t = _familiar_tag(r)
                if t is not None and t not in tags:
                    tags.append(t)
            docker.append(
                {
                    "Config": _blob_name(Descriptor.from_json(cfg).digest),
                    "RepoTags": tags or None,
                    "Layers": _layer_paths(provider, root, present),
                }
            )
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return LayoutPlan(
        format=fmt,
        images=tuple(out_images),
        blobs=tuple(sorted(blobs.values(), key=lambda d: str(d.digest))),
        index_json=_gojson.marshal(index),
        manifest_json=_gojson.marshal(docker) if fmt is Format.DOCKER else None,
    )


# -- writing ----------------------------------------------------------------------------------


def _copy_blob(provider: Provider, desc: Descriptor, out: Sink) -> None:
    """Stream one blob to ``out``, verifying its size and digest on the way."""
    h = desc.digest.hasher()
    left = desc.size
    with provider.open(desc) as f:
        while left:
            chunk = f.read(min(left, _CHUNK))
            if not chunk:
                raise DigestMismatch(
                    f"content {desc.digest}: blob ended {left} bytes before its size {desc.size}"
                )
            h.update(chunk)
            out.write(chunk)
            left -= len(chunk)
        if f.read(1):
            raise DigestMismatch(f"content {desc.digest}: blob longer than its size {desc.size}")
    if h.digest() != desc.digest:
        raise DigestMismatch(
            f"content {desc.digest}: blob in the store hashes to {h.digest()} (store corrupt)"
        )


def _members(plan: LayoutPlan) -> list[tuple[str, Descriptor | bytes | None, int]]:
    """(name, source, mode) of every archive member, sorted by name; source None: directory."""
    out: list[tuple[str, Descriptor | bytes | None, int]] = [("blobs/", None, 0o755)]
    for alg in sorted({b.digest.algorithm for b in plan.blobs}):
        out.append((f"blobs/{alg}/", None, 0o755))
    out.extend((_blob_name(b.digest), b, 0o444) for b in plan.blobs)
    out.append(("index.json", plan.index_json, 0o644))
    if plan.manifest_json is not None:
        out.append(("manifest.json", plan.manifest_json, 0o644))
    out.append(("oci-layout", plan.oci_layout, 0o444))
    out.sort(key=lambda m: m[0])
    return out


def write_archive(sink: Sink, provider: Provider, plan: LayoutPlan) -> int:
    """Stream the archive of ``plan`` to ``sink``; returns the bytes written.

    ``sink`` only needs ``write`` (``sys.stdout.buffer``, an open file, a socket wrapper); it is
    not flushed or closed here. The blobs are read from ``provider`` while writing.

    Raises:
        DigestMismatch: a blob changed in the store since planning; the stream stops before the
            end-of-archive marker, so what was written is an invalid (truncated) archive.
        NotFound: a blob vanished from the store since planning (same consequence).
        OSError: from the sink.
    """
    tw = TarWriter(sink)
    for name, src, mode in _members(plan):
        n = name.encode()
        if src is None:
            tw.add_header(n, DIRTYPE, mode, 0, 0, 0)
        elif isinstance(src, bytes):
            tw.add_file(n, src, mode=mode)
        else:
            tw.add_header(n, REGTYPE, mode, 0, 0, 0, src.size)
            _copy_blob(provider, src, tw)
    tw.close()
    return tw.bytes_written


def save(
    sink: Sink,
    provider: Provider,
    images: Sequence[ArchiveImage],
    *,
    format: Format = Format.OCI,
    platform: Platform | None = None,
) -> LayoutPlan:
    """:func:`plan_layout` then :func:`write_archive`; returns the plan (roots and names)."""
    plan = plan_layout(provider, images, format=format, platform=platform)
    write_archive(sink, provider, plan)
    return plan


# -- directories ------------------------------------------------------------------------------


class _FileSink:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def write(self, data: bytes | bytearray | memoryview, /) -> object:
        return self._f.write(data)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    with atomicfile.create(path, mode, prefix=f".{path.name}.tmp-") as f:
        f.write(data)


def _entry_names(e: Mapping[str, object]) -> tuple[str | None, str | None]:
    ann = e.get("annotations")
    if not isinstance(ann, Mapping):
        return None, None
    a, b = ann.get(ANNOTATION_IMAGE_NAME), ann.get(ANNOTATION_REF_NAME)
    return (a if isinstance(a, str) else None), (b if isinstance(b, str) else None)


def _merged_index(existing: bytes | None, plan: LayoutPlan) -> bytes:
    """``plan``'s index.json merged into an existing one: entries that share a name go."""
    new = json.loads(plan.index_json)
    if existing is None:
        return plan.index_json
    try:
        old = json.loads(existing)
    except ValueError:
        raise InvalidArgument("layout index.json: invalid JSON; refusing to overwrite") from None
    if not isinstance(old, dict) or not isinstance(old.get("manifests", []), list):
        raise InvalidArgument("layout index.json: not an image index; refusing to overwrite")
    new_entries: list[dict[str, object]] = new["manifests"]
    full = {_entry_names(e)[0] for e in new_entries} - {None}
    refs = {_entry_names(e)[1] for e in new_entries} - {None}
    kept = []
    for e in old.get("manifests") or ():
        if not isinstance(e, dict):
            continue
        c, r = _entry_names(e)
        if (c is not None and c in full) or (r is not None and r in refs) or e in new_entries:
            continue
        kept.append(e)
    out = dict(old)
    out["schemaVersion"] = 2
    out.setdefault("mediaType", mt.OCI_INDEX)
    out["manifests"] = kept + new_entries
    return _gojson.marshal(out)


def write_directory(path: str | os.PathLike[str], provider: Provider, plan: LayoutPlan) -> None:
    """Write ``plan`` as an OCI layout directory (BuildKit's ``tar=false``).

    The directory is created if needed. An existing layout is added to: blobs already present
    with the right size are kept, and ``index.json`` entries of other images stay (entries that
    carry one of the new names are replaced). Each blob is written to a temporary name, verified
    and renamed, so an interrupted write never leaves a wrong blob under a digest.

    Raises:
        InvalidArgument: ``path`` holds an ``index.json`` that is not an image index.
        DigestMismatch, NotFound: as :func:`write_archive`.
        OSError: from the file system.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    idx = root / "index.json"
    try:
        existing: bytes | None = idx.read_bytes()
    except FileNotFoundError:
        existing = None
    index_json = _merged_index(existing, plan)
    for b in plan.blobs:
        d = root / "blobs" / b.digest.algorithm
        d.mkdir(parents=True, exist_ok=True)
        target = d / b.digest.hex
        try:
            st = os.lstat(target)
            if st.st_size == b.size and not os.path.islink(target):
                continue
        except FileNotFoundError:
            pass
        with atomicfile.create(target, 0o444, prefix=f".{b.digest.hex}.tmp-") as f:
            _copy_blob(provider, b, _FileSink(f))
    _write_atomic(root / "oci-layout", plan.oci_layout, 0o444)
    if plan.manifest_json is not None:
        _write_atomic(root / "manifest.json", plan.manifest_json, 0o644)
    _write_atomic(idx, index_json, 0o644)
