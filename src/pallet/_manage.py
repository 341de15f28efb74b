"""Store management behind :class:`pallet.Store`: images (list, look up, tag, remove), garbage
collection and fsck, the content store and leases (:class:`pallet.ContentStore`,
:class:`pallet.LeaseManager`), and the containerd calls (``version``, ``copy``).

Each function takes the :class:`~pallet._backend.Backend` of a store and returns the public
records of :mod:`pallet._types`; the store's own records (``pallet.images.Image``,
``pallet.content.Info``, …) do not leave this module.

An image's :attr:`~pallet.Image.size` is the size of everything it references, each blob once,
as ``docker images`` and ``ctr images ls`` report it: for an index every platform's manifest,
config and layers. Content that is not in the store (the other platforms of an image pulled for
one) counts by its descriptor's size and is not descended into (:func:`pallet._lookup.image_of`,
shared with the registry and archive calls).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from . import images as _images
from ._lookup import find_image, image_of, parse_platform
from ._types import (
    ContainerdVersion,
    ContentInfo,
    CopyResult,
    FsckProblem,
    FsckReport,
    GCStats,
    Image,
    IngestStatus,
    Lease,
    LeaseResource,
)
from .errors import AlreadyExists, InvalidArgument, NotFound, Unsupported
from .labels import GC_EXPIRE
from .oci.descriptor import Descriptor, Platform
from .oci.digest import Digest

if TYPE_CHECKING:
    from ._backend import Backend
    from .content import Info, Status
    from .leases import Lease as LeaseRecord

__all__ = [
    "abort",
    "active",
    "content_info",
    "content_list",
    "content_open",
    "content_remove",
    "copy",
    "fsck",
    "gc",
    "graph",
    "image",
    "images",
    "ingest",
    "label",
    "lease_create",
    "lease_list",
    "lease_remove",
    "lease_temporary",
    "remove",
    "tag",
    "version",
]

_CHUNK = 1 << 20


def _filters(filters: Sequence[str] | None) -> Sequence[str]:
    """``filters`` checked: None is no filter; a lone string is refused."""
    if filters is None:
        return ()
    if isinstance(filters, str):
        raise InvalidArgument(f"filters {filters!r}: want a sequence of filter strings")
    return filters


# --- images ---------------------------------------------------------------------------------
def images(b: Backend, filters: Sequence[str] | None) -> list[Image]:
    """The images matching every filter, by name."""
    filters = _filters(filters)
    return [image_of(b.content, rec) for rec in b.images.list(filters)]


def image(b: Backend, ref: str | Image) -> Image:
    name = ref.name if isinstance(ref, Image) else ref
    return image_of(b.content, find_image(b.images, name))


def graph(b: Backend, ref: str | Image) -> list[Descriptor]:
    """The root descriptor and everything under it, parents before children, each digest once.

    Raises:
        NotFound: the image, or a manifest or index under it, is not in the store.
    """
    name = ref.name if isinstance(ref, Image) else ref
    return list(_images.walk(b.content, find_image(b.images, name).target))


def tag(b: Backend, src: str | Image, dst: str) -> Image:
    """Point ``dst`` at ``src``'s target (creating or moving it); returns the ``dst`` image."""
    name = src.name if isinstance(src, Image) else src

    def put() -> _images.Image:
        rec = replace(find_image(b.images, name), name=dst)
        try:
            return b.images.update(rec, ["target"])
        except NotFound:
            return b.images.create(rec)

    if b.kind == "embedded":
        # under the shared GC lock: a collection cannot run between reading the source and
        # naming its target, so a source removed meanwhile cannot leave ``dst`` dangling
        with b.embedded.database.gc_lock(shared=True):
            out = put()
    else:
        out = put()
    return image_of(b.content, out)


def remove(b: Backend, names: Sequence[str | Image], *, gc: bool) -> None:
    """Delete ``names`` (each resolved as :func:`image` does) in order; with ``gc`` the last
    delete collects garbage before it returns (embedded: runs the collector; containerd: waits
    for the daemon's)."""
    last = len(names) - 1
    for idx, n in enumerate(names):
        name = n.name if isinstance(n, Image) else n
        if not isinstance(name, str):
            raise InvalidArgument(f"image {name!r}: want a name or a pallet.Image")
        _delete_image(b, name, sync=gc and idx == last)


def _delete_image(b: Backend, name: str, *, sync: bool) -> None:
    """Delete the image named ``name`` as written, else by its normalised form (``app:1`` ->
    ``docker.io/library/app:1``), as :func:`~pallet._lookup.find_image` resolves it."""
    from .oci.reference import Reference

    try:
        b.images.delete(name, sync=sync)
        return
    except NotFound:
        try:
            full = str(Reference.parse(name))
        except InvalidArgument:
            full = name
        if full == name:
            raise
    try:
        b.images.delete(full, sync=sync)
    except NotFound:
        raise NotFound(f"image {name}: not found") from None


def _embedded_only(b: Backend, what: str) -> None:
    if b.kind != "embedded":
        raise Unsupported(f"store {b.where}: {what} (containerd's store is the daemon's to keep)")


def gc(b: Backend, *, dry_run: bool) -> GCStats:
    _embedded_only(b, "gc works on the embedded store only")
    st = b.embedded.collect(dry_run=dry_run)
    size = st.bytes
    if dry_run:  # the collector lists what it would remove; what that frees is asked here
        for d in st.blobs:
            with suppress(NotFound):
                size += b.content.info(Digest(d)).size
    return GCStats(
        blobs=tuple(st.blobs),
        bytes=size,
        leases=tuple(st.leases),
        ingests=tuple(st.ingests),
        snapshots=tuple(st.snapshots),
        dry_run=dry_run,
    )


def fsck(b: Backend, *, repair: bool) -> FsckReport:
    _embedded_only(b, "fsck works on the embedded store only")
    n = 0

    def count(_: Digest) -> None:
        nonlocal n
        n += 1

    problems = b.embedded.fsck(repair=repair, on_blob=count)
    return FsckReport(
        problems=tuple(
            FsckProblem(kind=p.kind, subject=p.subject, detail=p.detail, repaired=p.repaired)
            for p in problems
        ),
        blobs_verified=n,
    )


# --- containerd -------------------------------------------------------------------------------
def _daemon(b: Backend, what: str) -> None:
    if b.client is None:
        raise Unsupported(f"store {b.where}: {what} needs a containerd store (Store.containerd)")


def version(b: Backend) -> ContainerdVersion:
    _daemon(b, "version")
    assert b.client is not None
    v = b.client.version()
    return ContainerdVersion(
        version=v.version,
        revision=v.revision,
        address=b.client.address,
        namespace=b.client.namespace,
    )


def copy(
    src: Backend,
    ref: str | Image,
    dst: Backend,
    *,
    names: Sequence[str],
    unpack: bool,
    snapshotter: str | None,
    platform: str | Platform | None,
) -> CopyResult:
    """Copy ``ref``'s graph from ``src`` into the containerd store ``dst``."""
    from ._backend import _DaemonUnpacker
    from .containerd import copy_image

    if isinstance(names, str):
        raise InvalidArgument(f"names {names!r}: want a sequence of names")
    plat = parse_platform(platform)
    rec = find_image(src.images, ref.name if isinstance(ref, Image) else ref)
    _daemon(dst, "copying to it")
    assert dst.client is not None
    if snapshotter is None:
        un = dst.unpacker
        snapshotter = un.snapshotter if isinstance(un, _DaemonUnpacker) else "overlayfs"
    res = copy_image(
        dst.client,
        src.content,
        rec,
        names=tuple(names),
        unpack=unpack,
        snapshotter=snapshotter,
        platform=plat,
    )
    return CopyResult(
        digest=str(res.image.target.digest),
        names=tuple(res.names),
        chain_id=str(res.chain_id) if res.chain_id else None,
        blobs_written=res.blobs_written,
        blobs_present=res.blobs_present,
        bytes_written=res.bytes_written,
    )


# --- content ----------------------------------------------------------------------------------
def _digest(value: str) -> Digest:
    return Digest.parse(value)


def _info(i: Info) -> ContentInfo:
    return ContentInfo(
        digest=str(i.digest),
        size=i.size,
        created=i.created_at,
        updated=i.updated_at,
        labels=dict(i.labels),
    )


def content_list(b: Backend, filters: Sequence[str] | None) -> list[ContentInfo]:
    filters = _filters(filters)
    return [_info(i) for i in b.content.walk(filters)]


def content_info(b: Backend, digest: str) -> ContentInfo:
    return _info(b.content.info(_digest(digest)))


def content_open(b: Backend, digest: str) -> BinaryIO:
    return b.content.open(_digest(digest))


def content_remove(b: Backend, digest: str) -> None:
    b.content.delete(_digest(digest))


def label(b: Backend, digest: str, labels: Mapping[str, str]) -> ContentInfo:
    """Set ``labels`` on a blob; an empty value removes the key."""
    info = b.content.info(_digest(digest))
    if not labels:  # no field paths would mean "replace all labels"
        return _info(info)
    paths = [f"labels.{k}" for k in labels]
    return _info(b.content.update(replace(info, labels=dict(labels)), paths))


def ingest(
    b: Backend,
    ref: str,
    data: bytes | bytearray | memoryview | BinaryIO,
    *,
    expected_size: int,
    expected_digest: str | None,
    labels: Mapping[str, str] | None,
    lease: str | None,
) -> str:
    """Write ``data`` as a blob under the ingest ``ref``; returns its digest."""
    expected = _digest(expected_digest) if expected_digest else None
    if expected_size < 0:
        raise InvalidArgument(f"expected size {expected_size}: must not be negative")
    if isinstance(data, bytes | bytearray | memoryview):
        src: BinaryIO = io.BytesIO(data)
    elif callable(getattr(data, "read", None)):
        src = data
    else:
        raise InvalidArgument(
            f"data of ingest {ref}: want bytes or a binary stream, not {type(data).__name__}"
        )
    try:
        with b.content.writer(ref, total=expected_size, expected=expected, lease=lease) as w:
            if w.offset:  # resume: skip what the store has
                if src.seekable():
                    src.seek(w.offset)
                else:
                    left = w.offset
                    while left and (chunk := src.read(min(left, _CHUNK))):
                        left -= len(chunk)
            while chunk := src.read(_CHUNK):
                w.write(chunk)
            return str(w.commit(expected_size, expected, labels=dict(labels or {})))
    except AlreadyExists:
        if expected is None:
            raise
        return str(expected)


def _status(s: Status) -> IngestStatus:
    return IngestStatus(
        ref=s.ref,
        offset=s.offset,
        total=s.total,
        expected=str(s.expected) if s.expected else None,
        started=s.started_at,
        updated=s.updated_at,
    )


def active(b: Backend, filters: Sequence[str] | None) -> list[IngestStatus]:
    filters = _filters(filters)
    return [_status(s) for s in b.content.list_statuses(filters)]


def abort(b: Backend, ref: str) -> None:
    b.content.abort(ref)


# --- leases -----------------------------------------------------------------------------------
def _lease(b: Backend, x: LeaseRecord, *, resources: bool) -> Lease:
    res = (
        tuple(LeaseResource(r.type, r.id) for r in b.leases.list_resources(x.id))
        if resources
        else ()
    )
    return Lease(id=x.id, created=x.created_at, labels=dict(x.labels), resources=res)


def lease_list(b: Backend, filters: Sequence[str] | None) -> list[Lease]:
    filters = _filters(filters)
    out = []
    for x in b.leases.list(filters):
        try:
            out.append(_lease(b, x, resources=True))
        except NotFound:  # deleted since it was listed
            continue
    return out


def _expiry(expires: timedelta) -> str:
    if not isinstance(expires, timedelta):
        raise InvalidArgument(f"expires {expires!r}: want a datetime.timedelta")
    return (datetime.now(UTC) + expires).isoformat().replace("+00:00", "Z")


def lease_create(
    b: Backend,
    lease_id: str | None,
    *,
    expires: timedelta | None,
    labels: Mapping[str, str] | None,
) -> Lease:
    from .leases import new_id

    lbl = dict(labels or {})
    if expires is not None:
        lbl[GC_EXPIRE] = _expiry(expires)
    return _lease(
        b, b.leases.create(new_id() if lease_id is None else lease_id, lbl), resources=False
    )


def lease_remove(b: Backend, lease_id: str, *, sync: bool) -> None:
    b.leases.delete(lease_id, sync=sync)


@contextmanager
def lease_temporary(
    b: Backend, *, expires: timedelta, labels: Mapping[str, str] | None
) -> Iterator[Lease]:
    lease = lease_create(b, None, expires=expires, labels=labels)
    try:
        yield lease
    finally:
        with suppress(NotFound):  # removed inside the block
            b.leases.delete(lease.id)
