"""The public value types of pallet's library API: what goes into an export and what comes out
of the :class:`pallet.Store` calls.

Standard library and :mod:`pallet.oci` only: ``import pallet`` loads this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .oci.descriptor import Descriptor

__all__ = [
    "ArchiveImage",
    "Config",
    "ContainerdVersion",
    "ContentInfo",
    "CopyResult",
    "ExportResult",
    "FsckProblem",
    "FsckReport",
    "GCStats",
    "Image",
    "IngestStatus",
    "Layer",
    "Lease",
    "LeaseResource",
    "RootFS",
    "UnpackResult",
]


@dataclass(frozen=True, slots=True)
class Layer:
    """A directory exported as one layer, its whole tree placed at ``dest``.

    Example::

        pallet.Layer("dist", dest="/app")
    """

    path: str
    dest: str = "/"


@dataclass(frozen=True, slots=True)
class RootFS:
    """A complete root filesystem, diffed against what is below it (the base, or the previous
    :class:`RootFS`): files it no longer has become whiteouts.

    Example::

        pallet.RootFS("rootfs")
    """

    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The image config's ``config`` fields an export sets on top of the base's (or of
    ``raw``): each given field replaces the base's, ``env`` and ``labels`` merge by key.

    Example::

        pallet.Config(cmd=["python", "-m", "app"], env={"PYTHONUNBUFFERED": "1"})
    """

    cmd: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    #: ``"8080"`` or ``"53/udp"``
    exposed_ports: Sequence[str] = ()
    #: a whole image config (as a config file holds it), used instead of the base's
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """What :meth:`pallet.Store.export` made.

    Example::

        result.digest     # 'sha256:…' of the manifest or index
        result.metadata   # the keys buildx writes to --metadata-file
    """

    #: the root digest (manifest, or index for several platforms)
    digest: str
    #: buildx's metadata-file dict (``containerimage.digest``, ``containerimage.descriptor``…)
    metadata: Mapping[str, Any]
    #: the names the image was stored or pushed under
    names: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """An image in the store.

    Example::

        for image in store.images():
            print(image.name, image.digest, image.size)
    """

    name: str
    #: the root's digest (a manifest or an index)
    digest: str
    media_type: str
    #: bytes of everything the image references (for an index, every platform), as
    #: ``docker images`` shows; content not in the store counts by its descriptor's size
    size: int
    #: bytes of the root manifest or index itself
    root_size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None
    #: the root descriptor as the store records it (with its annotations and platform, if any);
    #: None only for a record built by hand
    target: Descriptor | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentInfo:
    """A blob in the content store (:meth:`pallet.ContentStore.info`).

    Example::

        info = store.content.info("sha256:…")
        info.size, info.labels.get("containerd.io/uncompressed")
    """

    digest: str
    size: int
    created: datetime
    updated: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestStatus:
    """An ingest in progress or interrupted (:meth:`pallet.ContentStore.active`): writing again
    under the same ``ref`` resumes at ``offset``.

    Example::

        for st in store.content.active():
            print(st.ref, st.offset, st.total)
    """

    ref: str
    #: bytes written so far
    offset: int
    #: the size announced when the ingest started (0: unknown)
    total: int
    #: the digest announced when the ingest started
    expected: str | None
    started: datetime
    updated: datetime


@dataclass(frozen=True, slots=True, order=True)
class LeaseResource:
    """What a lease holds: ``type`` is ``"content"``, ``"ingests"`` or
    ``"snapshots/<snapshotter>"``.

    Example::

        pallet.LeaseResource("content", "sha256:…")
    """

    type: str
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A lease: while it exists, what it holds survives garbage collection (until the time in
    its ``containerd.io/gc.expire`` label, if any).

    Example::

        lease = store.leases.create(expires=datetime.timedelta(hours=1))
        print(lease.id, lease.labels["containerd.io/gc.expire"])
    """

    id: str
    created: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: Sequence[LeaseResource] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GCStats:
    """What :meth:`pallet.Store.gc` removed (with ``dry_run``: the blobs and expired leases it
    would remove, and the bytes that would free).

    Example::

        stats = store.gc()
        print(len(stats.blobs), "blobs,", stats.bytes, "bytes freed")
    """

    #: digests of the blobs removed
    blobs: Sequence[str] = ()
    #: their bytes
    bytes: int = 0
    #: ids of the expired leases removed
    leases: Sequence[str] = ()
    #: refs of the stale ingests removed
    ingests: Sequence[str] = ()
    #: ``<snapshotter>/<key>`` of the snapshots removed
    snapshots: Sequence[str] = ()
    dry_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FsckProblem:
    """One finding of :meth:`pallet.Store.fsck`; ``str()`` gives
    ``<kind> <subject>: <detail>[ (repaired)]``.

    Example::

        for p in store.fsck().problems:
            print(p)   # blob sha256:…: content hashes to sha256:…
    """

    #: what is wrong: ``"blob"``, ``"image"``, ``"label"``, …
    kind: str
    #: the digest or name concerned
    subject: str
    detail: str
    #: ``repair=True`` removed what could not be trusted
    repaired: bool = False

    def __str__(self) -> str:
        tail = " (repaired)" if self.repaired else ""
        return f"{self.kind} {self.subject}: {self.detail}{tail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FsckReport:
    """What :meth:`pallet.Store.fsck` found.

    Example::

        report = store.fsck()
        assert report.ok, "\\n".join(map(str, report.problems))
    """

    problems: Sequence[FsckProblem] = ()
    #: blobs that hashed to their digest
    blobs_verified: int = 0

    @property
    def ok(self) -> bool:
        """No problem is left unrepaired.

        Example::

            sys.exit(0 if store.fsck(repair=True).ok else 1)
        """
        return all(p.repaired for p in self.problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerdVersion:
    """A containerd daemon's answer to :meth:`pallet.Store.version`.

    Example::

        with pallet.Store.containerd() as ctr:
            print(ctr.version().version)   # '1.7.24'
    """

    version: str
    revision: str
    #: the socket
    address: str
    namespace: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyResult:
    """What :meth:`pallet.Store.copy` did.

    Example::

        res = store.copy("app:1", ctr, unpack=True)
        print(res.digest, res.bytes_written, res.chain_id)
    """

    #: the image's root digest
    digest: str
    #: the names it has in the destination
    names: Sequence[str]
    #: the unpacked snapshot's chain ID (``unpack=True``)
    chain_id: str | None = None
    blobs_written: int = 0
    #: blobs the destination had already
    blobs_present: int = 0
    bytes_written: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveImage:
    """One image of an archive: its root (as ``index.json`` lists it) and the names it goes by.
    :meth:`pallet.Store.save` returns those it wrote, :meth:`pallet.Store.load` those it read.

    Example::

        for image in store.load("app.tar"):
            print(image.digest, *image.names)
    """

    #: the root descriptor: a manifest, or an index (with ``save``'s ``platform``, the chosen
    #: platform's manifest)
    target: Descriptor
    #: normalised references (``docker.io/library/alpine:3.20``); after ``load``, the store
    #: names the image by each of them
    names: tuple[str, ...] = ()
    #: the archive's format: ``"oci"`` (an OCI image layout) or ``"docker"`` (``docker save``'s)
    format: str = "oci"

    @property
    def digest(self) -> str:
        """The root's digest, ``sha256:…``."""
        return str(self.target.digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpackResult:
    """What :meth:`pallet.Store.unpack` wrote: the manifest whose layers it applied.

    Example::

        result = store.unpack("registry.example.com/app:1", "rootfs")
        print(result.digest, len(result.layers))
    """

    #: the manifest unpacked (for an index, the platform's manifest)
    manifest: Descriptor
    #: its layers, bottom first
    layers: tuple[Descriptor, ...] = ()
    #: the uncompressed digest of each layer, as the config's ``rootfs.diff_ids`` lists them
    diff_ids: tuple[str, ...] = ()
    #: what could not be reproduced exactly (ownership without privileges, device nodes…)
    warnings: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The manifest's digest, ``sha256:…``."""
        return str(self.manifest.digest)
