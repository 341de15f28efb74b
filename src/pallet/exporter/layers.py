"""Layer building: the blob of every snapshot an export reaches, reused or computed once.

A platform's layers are the committed snapshots from the bottom of its chain up to the target's
``ref``, one layer each. :class:`LayerBuilder` builds every (snapshot, epoch) pair once, on a
pool of threads:

* a snapshot whose labels record a blob (:class:`RecordedLayer`: a base image's layer, or an
  earlier output of the same export at the same epoch) reuses it whatever the requested
  compression, unless ``force-compression`` (then
  :func:`~pallet.compression.pipeline.convert_blob`);
* otherwise the diff of the snapshot's directory against its parent's
  (:func:`~pallet.archive.diff.write_diff`, or the whole directory placed at
  ``pallet.io/layer.dest``) is streamed through the one-pass compression pipeline, and the
  blob is recorded on the snapshot for the next output.

With a :class:`~.unpack.Streaming` unpacker, the chain of the platform to unpack is built
bottom-up on one worker instead, each computed layer's tar stream also applied into an active
snapshot of the unpacker (:class:`~.unpack.TeeApply`), so that unpacking finds the chain present.

A *lazy* snapshot (``pallet.io/lazy``: a base image's layer that was never downloaded) has no
directory, only its recorded blob; that blob must be in the content store unless the export only
pushes (the registry then mounts it from where the base came from).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from .. import labels as _labels
from .._gotime import Timestamp
from ..archive.diff import DiffOptions, write_diff
from ..compression import Compression
from ..compression.pipeline import LayerResult, Sink, convert_blob, write_layer
from ..content import Store
from ..errors import (
    AlreadyExists,
    DigestMismatch,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ..leases import LeaseManager, Resource
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from ..progress import Progress, ProgressWriter, finished
from ..rootfs import Layer as RootfsLayer
from ..rootfs import chain_ids
from ..snapshots import Info as SnapshotInfo
from ..snapshots import Snapshotter
from .config import Layer
from .options import ImageExportOptions
from .plan import PlatformTarget
from .unpack import Streaming, TeeApply, UnpackTarget

__all__ = [
    "ANNOTATION_REWRITTEN",
    "LayerBuilder",
    "RecordedLayer",
    "SourceSnapshotter",
    "hold",
    "rootfs_layers",
]

#: on layers whose mtimes were clamped to the epoch (BuildKit >= 0.13)
ANNOTATION_REWRITTEN = "buildkit/rewritten-timestamp"

#: (snapshot, epoch): the unit of work; one snapshot clamped to two epochs is two layers
_LayerKey = tuple[str, int | None]


class SourceSnapshotter(Snapshotter, Protocol):
    """A snapshotter whose committed snapshots can be read as directories (the native one)."""

    def path(self, key: str) -> str: ...


#: ``pallet.io/layer.epoch`` of a blob an export made without clamping mtimes. Not ``""``:
#: stores drop empty labels, and a blob without the label reads back as a fixed one (a base
#: image's layer), which is reused at any epoch.
_UNCLAMPED = "none"


def _epoch_label(epoch: int | None) -> str:
    return _UNCLAMPED if epoch is None else str(epoch)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedLayer:
    """The layer blob a snapshot's labels record (``pallet.io/layer.*``).

    :class:`LayerBuilder` records one after computing a layer (:meth:`to_labels`), so that the
    next output of the same export reuses it; a base image's layers are committed with one.
    """

    digest: Digest
    media_type: str
    #: None: not recorded (the content store's size is used)
    size: int | None
    diff_id: Digest
    #: ``pallet.io/layer.epoch`` as written: the epoch in seconds that the blob's mtimes were
    #: clamped to, ``"none"`` for none; None for a fixed blob (a base image's layer), whose
    #: bytes do not depend on the export's epoch.
    epoch: str | None = None
    #: the snapshot has no directory (``pallet.io/lazy``): the blob is the layer's only copy
    lazy: bool = False

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> RecordedLayer | None:
        """The blob that ``labels`` record, or None when they record none.

        Raises:
            InvalidArgument: a recorded blob whose labels are missing or malformed.
        """
        blob = labels.get(_labels.LAYER_BLOB)
        if not blob:
            return None
        missing = [k for k in (_labels.LAYER_MEDIA_TYPE, _labels.LAYER_DIFF_ID) if k not in labels]
        if missing:
            raise InvalidArgument(f"label {missing[0]}: missing")
        raw_size = labels.get(_labels.LAYER_SIZE)
        try:
            size = int(raw_size) if raw_size else None
        except ValueError:
            raise InvalidArgument(
                f"label {_labels.LAYER_SIZE}: {raw_size!r} is not a number"
            ) from None
        return cls(
            digest=Digest.parse(blob),
            media_type=labels[_labels.LAYER_MEDIA_TYPE],
            size=size,
            diff_id=Digest.parse(labels[_labels.LAYER_DIFF_ID]),
            epoch=labels.get(_labels.LAYER_EPOCH),
            lazy=_labels.LAZY in labels,
        )

    def to_labels(self) -> dict[str, str]:
        """The labels that :meth:`from_labels` reads back (``pallet.io/lazy`` excepted)."""
        out = {
            _labels.LAYER_BLOB: str(self.digest),
            _labels.LAYER_MEDIA_TYPE: self.media_type,
            _labels.LAYER_SIZE: "" if self.size is None else str(self.size),
            _labels.LAYER_DIFF_ID: str(self.diff_id),
        }
        if self.epoch is not None:
            out[_labels.LAYER_EPOCH] = self.epoch
        return out

    def matches_epoch(self, epoch: int | None) -> bool:
        """Whether the blob is the layer at ``epoch``: a fixed or lazy blob always is; one an
        export made is when it was made with the same epoch."""
        return self.lazy or self.epoch is None or self.epoch == _epoch_label(epoch)

    @property
    def clamped(self) -> bool:
        """Whether an export clamped the blob's mtimes to its epoch (then the layer's
        descriptor gets :data:`ANNOTATION_REWRITTEN`)."""
        return not self.lazy and self.epoch not in (None, "", _UNCLAMPED)


def hold(leases: LeaseManager, lease: str, digest: Digest) -> None:
    """Hold blob ``digest`` under ``lease`` (one that is reused rather than written)."""
    with contextlib.suppress(NotFound, AlreadyExists):
        leases.add_resource(lease, Resource(type="content", id=str(digest)))


def rootfs_layers(layers: Sequence[Layer]) -> list[RootfsLayer]:
    """``layers`` as an unpacker takes them: blob and diff ID."""
    return [RootfsLayer(blob=layer.descriptor, diff_id=layer.diff_id) for layer in layers]


def _mark_rewritten(descriptor: Descriptor, epoch: str) -> Descriptor:
    return replace(descriptor, annotations={**descriptor.annotations, ANNOTATION_REWRITTEN: epoch})


class _CountingSink:
    """Passes the tar stream on and reports the bytes so far (at most every 0.2 s)."""

    __slots__ = ("_id", "_last", "_n", "_progress", "_sink", "_started")

    def __init__(self, sink: Sink, progress: ProgressWriter, pid: str, started: float) -> None:
        self._sink = sink
        self._progress = progress
        self._id = pid
        self._started = started
        self._n = 0
        self._last = 0.0

    def write(self, data: bytes | bytearray | memoryview, /) -> object:
        self._n += len(data)
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self._progress.write(
                Progress(
                    id=self._id,
                    name=f"{self._id} (tar stream)",
                    current=self._n,
                    started=self._started,
                    parent="exporting layers",
                )
            )
        return self._sink.write(data)


class LayerBuilder:
    """Builds the layers of one export, every blob held under the export's lease.

    Args:
        content: where blobs are looked up and written.
        leases, lease: the export's lease.
        snapshotter: holds the snapshots; their directories are diffed.
        options: compression and its level, media types, ``force-compression``,
            ``rewrite-timestamp``.
        progress: receives a ``layer <snapshot>`` vertex per layer, under ``exporting layers``.
        on_warning: receives the differ's skipped entries.
        workers: layers built at once.
        allow_lazy: a lazy layer's blob may be missing from ``content`` (a push-only export).
    """

    def __init__(
        self,
        *,
        content: Store,
        leases: LeaseManager,
        lease: str,
        snapshotter: SourceSnapshotter,
        options: ImageExportOptions,
        progress: ProgressWriter,
        on_warning: Callable[[str], None],
        workers: int,
        allow_lazy: bool,
    ) -> None:
        self.content = content
        self.leases = leases
        self.lease = lease
        self.snapshotter = snapshotter
        self.options = options
        self.progress = progress
        self.on_warning = on_warning
        self.workers = workers
        self.allow_lazy = allow_lazy
        self.compression = Compression(options.compression)
        #: snapshots whose layer was applied into an unpack target while computed
        self._applied: set[str] = set()

    def layer_epoch(self, target: PlatformTarget) -> int | None:
        """The epoch ``target``'s layer mtimes are clamped to: its epoch with
        ``rewrite-timestamp``, else None."""
        epoch = target.epoch
        return epoch.seconds if self.options.rewrite_timestamp and epoch is not None else None

    def build_all(
        self,
        targets: Sequence[PlatformTarget],
        *,
        unpacker: Streaming | None = None,
        unpack_id: str | None = None,
    ) -> dict[str, list[Layer]]:
        """Every target's layers by target id, bottom first (a target without ``ref`` has none).

        With ``unpacker``, the chain of target ``unpack_id`` is built bottom-up on one worker,
        each computed layer applied into a snapshot of ``unpacker`` as it is made.
        """
        jobs: dict[_LayerKey, SnapshotInfo] = {}
        wanted: dict[str, list[_LayerKey]] = {}
        for target in targets:
            if not target.ref:
                continue
            epoch = self.layer_epoch(target)
            keys = []
            for snapshot in self._chain(target.ref):
                jobs.setdefault((snapshot.name, epoch), snapshot)
                keys.append((snapshot.name, epoch))
            wanted[target.id] = keys
        streamed: list[_LayerKey] = []
        if unpacker is not None and unpack_id is not None:
            streamed = wanted.get(unpack_id, [])
        built: dict[_LayerKey, Layer] = {}
        if jobs:
            with ThreadPoolExecutor(
                max_workers=max(1, min(self.workers, len(jobs))),
                thread_name_prefix="pallet-layer",
            ) as pool:
                futures: dict[_LayerKey, Future[Layer]] = {
                    key: pool.submit(self.build, snapshot, key[1])
                    for key, snapshot in jobs.items()
                    if key not in streamed
                }
                chain_future: Future[dict[_LayerKey, Layer]] | None = None
                if unpacker is not None and streamed:
                    chain_future = pool.submit(self._build_unpacking, unpacker, streamed, jobs)
                try:
                    for key, future in futures.items():
                        built[key] = future.result()
                    if chain_future is not None:
                        built.update(chain_future.result())
                except BaseException:
                    for future in futures.values():
                        future.cancel()
                    raise
        return {tid: [built[key] for key in keys] for tid, keys in wanted.items()}

    def build(
        self, snapshot: SnapshotInfo, epoch: int | None, unpack_into: UnpackTarget | None = None
    ) -> Layer:
        """The layer of ``snapshot`` with mtimes clamped to ``epoch``: its recorded blob, or
        its diff through the pipeline.

        With ``unpack_into``, a computed layer's tar stream is also applied into
        ``unpack_into.dir`` as it is produced; the caller commits or aborts it.
        """
        started = time.time()
        recorded = self._recorded(snapshot)
        blob: tuple[Descriptor, Digest] | None = None
        if recorded is not None and recorded.matches_epoch(epoch):
            blob = self._reuse(snapshot, recorded)
        if blob is None:
            blob = self._compute(snapshot, epoch, unpack_into, started)
        descriptor, diff_id = blob
        self.progress.write(
            finished(
                f"layer {snapshot.name}",
                f"layer {descriptor.digest}",
                descriptor.size,
                parent="exporting layers",
                started=started,
            )
        )
        created = None
        if _labels.LAZY not in snapshot.labels and snapshot.created_at is not None:
            created = Timestamp.from_datetime(snapshot.created_at)
        return Layer(
            descriptor=descriptor,
            diff_id=diff_id,
            created_at=created,
            description=snapshot.labels.get(_labels.LAYER_DESCRIPTION, ""),
        )

    def _recorded(self, snapshot: SnapshotInfo) -> RecordedLayer | None:
        try:
            return RecordedLayer.from_labels(snapshot.labels)
        except InvalidArgument as exc:
            if _labels.LAZY not in snapshot.labels:
                return None  # damaged labels: the layer is computed again
            blob = snapshot.labels[_labels.LAYER_BLOB]
            raise NotFound(
                f"snapshot {snapshot.name}: its layer blob {blob} is not available: {exc}"
            ) from None

    def _reuse(
        self, snapshot: SnapshotInfo, recorded: RecordedLayer
    ) -> tuple[Descriptor, Digest] | None:
        """The recorded blob (converted under ``force-compression``), or None when the store
        no longer has it."""
        try:
            size = self.content.info(recorded.digest).size
        except NotFound as exc:
            if not recorded.lazy:
                return None
            # a lazy base layer that was never downloaded: fine for a push-only export
            if not (self.allow_lazy and recorded.size is not None and recorded.size > 0):
                raise NotFound(
                    f"snapshot {snapshot.name}: its layer blob {recorded.digest} "
                    f"is not available: {exc}"
                ) from None
            size = recorded.size
        descriptor = Descriptor(media_type=recorded.media_type, digest=recorded.digest, size=size)
        diff_id = recorded.diff_id
        if self.options.force_compression:
            converted = convert_blob(
                self.content,
                descriptor,
                self.compression,
                self.options.compression_level,
                oci=self.options.oci_mediatypes,
                lease=self.lease,
                force=True,
            )
            descriptor, diff_id = converted.descriptor, converted.diff_id
        hold(self.leases, self.lease, descriptor.digest)
        if recorded.clamped:
            assert recorded.epoch is not None
            descriptor = _mark_rewritten(descriptor, recorded.epoch)
        return descriptor, diff_id

    def _compute(
        self,
        snapshot: SnapshotInfo,
        epoch: int | None,
        unpack_into: UnpackTarget | None,
        started: float,
    ) -> tuple[Descriptor, Digest]:
        """Stream the snapshot's diff through the pipeline and record the blob on it."""
        dest = snapshot.labels.get(_labels.LAYER_DEST)
        # with a dest the directory is the whole layer: nothing to diff against
        lower = None if dest is not None or not snapshot.parent else self._path(snapshot.parent)
        upper = self._path(snapshot.name)
        diff_options = DiffOptions(
            source_date_epoch=epoch, dest=dest or "", on_warning=self.on_warning
        )
        progress_id = f"layer {snapshot.name}"

        def produce(sink: Sink) -> None:
            counted = _CountingSink(sink, self.progress, progress_id, started)
            write_diff(lower, upper, counted, diff_options)

        if unpack_into is None:
            result = self._write(produce)
        else:
            with TeeApply(unpack_into.dir, self.on_warning) as tee:
                result = self._write(lambda sink: produce(tee.wrap(sink)))
            if tee.diff_id != result.diff_id:
                raise DigestMismatch(
                    f"layer {result.descriptor.digest}: applied {tee.diff_id}, "
                    f"computed {result.diff_id}"
                )
            self._applied.add(snapshot.name)
        hold(self.leases, self.lease, result.descriptor.digest)
        self._record(snapshot, result, epoch)
        descriptor = result.descriptor
        if epoch is not None:
            descriptor = _mark_rewritten(descriptor, str(epoch))
        return descriptor, result.diff_id

    def _write(self, produce: Callable[[Sink], None]) -> LayerResult:
        return write_layer(
            produce,
            self.content,
            compression=self.compression,
            level=self.options.compression_level,
            oci=self.options.oci_mediatypes,
            lease=self.lease,
        )

    def _record(self, snapshot: SnapshotInfo, result: LayerResult, epoch: int | None) -> None:
        """Remember the blob on the snapshot so that the next output of the export reuses it."""
        new = RecordedLayer(
            digest=result.descriptor.digest,
            media_type=result.descriptor.media_type,
            size=result.descriptor.size,
            diff_id=result.diff_id,
            epoch=_epoch_label(epoch),
        ).to_labels()
        merged = {**snapshot.labels, **new}
        # best effort: a snapshotter that refuses labels only loses the reuse
        with contextlib.suppress(Error):
            self.snapshotter.update(replace(snapshot, labels=merged), [f"labels.{k}" for k in new])

    def _build_unpacking(
        self,
        unpacker: Streaming,
        chain: Sequence[_LayerKey],
        jobs: Mapping[_LayerKey, SnapshotInfo],
    ) -> dict[_LayerKey, Layer]:
        """Build ``chain`` bottom-up, each computed layer applied into its own snapshot."""
        out: dict[_LayerKey, Layer] = {}
        below: list[Layer] = []
        parent = ""
        for key in chain:
            snapshot = jobs[key]
            target: UnpackTarget | None = None
            if _labels.LAYER_BLOB not in snapshot.labels:
                if below:  # the layers below must be snapshots before this one can be prepared
                    parent = str(unpacker(rootfs_layers(below), self.lease))
                target = unpacker.begin(parent, self.lease)
            try:
                layer = self.build(snapshot, key[1], unpack_into=target)
            except BaseException:
                if target is not None:
                    target.abort()
                raise
            out[key] = layer
            below.append(layer)
            if target is not None:
                if snapshot.name in self._applied:
                    chain_id = chain_ids([ly.diff_id for ly in below])[-1]
                    target.commit(chain_id)
                    parent = str(chain_id)
                else:  # the layer was reused after all: unpack it from its blob later
                    target.abort()
        return out

    def _chain(self, key: str) -> list[SnapshotInfo]:
        """The committed snapshots from the bottom to ``key``."""
        out: list[SnapshotInfo] = []
        seen: set[str] = set()
        k = key
        while k:
            if k in seen:
                raise FailedPrecondition(f"snapshot {key}: its parent chain has a cycle")
            seen.add(k)
            info = self.snapshotter.stat(k)
            if info.kind != "committed":
                raise FailedPrecondition(f"snapshot {k}: not committed")
            out.append(info)
            k = info.parent
        out.reverse()
        return out

    def _path(self, key: str) -> str:
        return self.snapshotter.path(key)
