"""The exporter with its I/O: BuildKit's ``image`` exporter and its ``oci``/``docker`` siblings.

:class:`ImageExporter` is bound to stores given as protocols (content, images, leases, a
snapshotter holding the export's snapshots, an :class:`Unpacker`), so the same code exports into
the embedded store and into containerd. ``resolve(attrs)`` validates every option (no I/O);
the instance's ``export(source)`` does BuildKit's ``Export``:

1. a temporary lease (released at the end; what survives is what an image record reaches);
2. ``exporting layers``: the layer of every snapshot in every platform's chain, in parallel
   (:meth:`_Run.layer`): a snapshot that already has a blob (labels
   ``pallet.io/layer.blob``/``.diffid``/``.mediatype``/``.size``, e.g. a base image's layer,
   or an earlier output of the same export) reuses it whatever the requested compression,
   unless ``force-compression`` (then :func:`~pallet.compression.pipeline.convert_blob`);
   otherwise the diff of the snapshot's directory against its parent's
   (:func:`~pallet.archive.diff.write_diff`, or the whole directory placed at
   ``pallet.io/layer.dest``) is streamed through the one-pass compression pipeline;
3. config, manifests, index (:mod:`.plan`), written in BuildKit's order with their GC labels;
4. ``image``: per name ``naming to`` (update, else create; ``name-canonical`` records),
   ``unpacking to`` (by chain ID through the :class:`Unpacker`, then the config's
   ``containerd.io/gc.ref.snapshot.<snapshotter>`` label) and ``pushing layers`` /
   ``pushing manifest for <ref>@<digest>``; ``oci``/``docker``: ``sending tarball`` (a file,
   standard output, or an OCI layout directory with ``tar=false``).

Reproducibility: with an epoch (``source-date-epoch``, metadata ``source.date.epoch`` or
``$SOURCE_DATE_EPOCH`` through the CLI) the config, history, manifest, index and the image
record's time are fixed, so the same snapshots give the same root digest on every run and
machine. Layer bytes are a function of the trees (the tar writer is deterministic); with
``rewrite-timestamp`` every mtime later than the epoch is clamped too, so files checked out at
different times still give the same layers. The promise covers pallet's own encoders at a given
level: ``uncompressed``; ``gzip`` through isal (levels 0-3) or zlib-ng (4-9) with the block
layout fixed in :mod:`pallet.compression`; ``zstd`` through the ``zstandard`` binding of libzstd
with a fixed job size. A different libzstd or isal version may encode differently; already
stored variants are reused, so digests stay stable on one machine regardless.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from .. import labels as _labels
from ..archive.diff import DiffOptions, write_diff
from ..compression import Compression
from ..compression.pipeline import Sink, convert_blob, write_layer
from ..content import Info as ContentInfo
from ..content import Store
from ..errors import (
    AlreadyExists,
    DigestMismatch,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ..images import Image, ImageStore
from ..leases import LeaseManager, Resource, temporary
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from ..oci.reference import Reference
from ..progress import NullProgress, Progress, ProgressWriter, finished, status
from ..rootfs import Layer as RootfsLayer
from ..rootfs import apply_layers, chain_ids
from ..snapshots import Info as SnapshotInfo
from ..snapshots import Snapshotter
from . import Source, export_response
from ._platforms import normalize
from .config import Layer, Timestamp
from .manifest import Blob
from .options import REWRITE_TIMESTAMP_WITHOUT_EPOCH, ImageExportOptions, go_parse_bool, resolve
from .plan import ExportPlan, ImageGraph, PlatformImage, assemble, plan_export

if TYPE_CHECKING:
    from ..remote import Options as RemoteOptions

__all__ = [
    "ANNOTATION_CREATED",
    "ANNOTATION_REWRITTEN",
    "DOCKER_MANIFEST_LISTS",
    "ImageExporter",
    "ImageExporterInstance",
    "NativeUnpacker",
    "SnapshotTarget",
    "SourceSnapshotter",
    "Streaming",
    "UnpackTarget",
    "Unpacker",
    "bind_dir",
]

#: the descriptor annotation of the tarball exporters (spec §7.2)
ANNOTATION_CREATED = "org.opencontainers.image.created"
#: on layers whose mtimes were clamped to the epoch (BuildKit >= 0.13)
ANNOTATION_REWRITTEN = "buildkit/rewritten-timestamp"
DOCKER_MANIFEST_LISTS = "docker exporter does not currently support exporting manifest lists"

_KINDS = {
    "image": "exporting to image",
    "oci": "exporting to oci image format",
    "docker": "exporting to docker image format",
}


class SourceSnapshotter(Snapshotter, Protocol):
    """A snapshotter whose committed snapshots can be read as directories (the native one)."""

    def path(self, key: str) -> str: ...


class Unpacker(Protocol):
    """Makes a chain of layers present as snapshots, by chain ID (``rootfs.ApplyLayers``)."""

    #: the snapshotter's name, as in ``containerd.io/gc.ref.snapshot.<name>``
    snapshotter: str

    def __call__(self, layers: Sequence[RootfsLayer], lease: str) -> Digest:
        """Apply ``layers`` under ``lease``; returns the top chain ID."""
        ...


class UnpackTarget(Protocol):
    """An active snapshot being filled while its layer is computed (see :class:`Streaming`)."""

    #: the directory to apply the layer into
    dir: str

    def commit(self, chain: Digest) -> None:
        """Commit as ``chain`` (losing a race to another writer counts as success)."""
        ...

    def abort(self) -> None:
        """Remove the active snapshot."""
        ...


class Streaming(Protocol):
    """An :class:`Unpacker` that can also be filled while a layer is computed: the exporter
    tees the layer's tar stream into pallet's applier, so unpacking costs no second pass."""

    def begin(self, parent: str, lease: str) -> UnpackTarget | None:
        """An active snapshot on top of chain ``parent``, or None when it cannot be written
        from here (the exporter then unpacks from the blob afterwards)."""
        ...


@dataclass(slots=True)
class SnapshotTarget:
    """:class:`UnpackTarget` over any snapshotter whose active snapshot is a bind mount."""

    snapshotter: Snapshotter
    key: str
    dir: str
    lease: str

    @classmethod
    def prepare(
        cls, sn: Snapshotter, parent: str, lease: str, local: Callable[[Sequence[Any]], str | None]
    ) -> SnapshotTarget | None:
        key = f"extract-{time.time_ns()}-{os.urandom(4).hex()} export"
        mounts = sn.prepare(key, parent, lease=lease)
        d = local(mounts)
        if d is None:
            with contextlib.suppress(Error):
                sn.remove(key)
            return None
        return cls(sn, key, d, lease)

    def commit(self, chain: Digest) -> None:
        try:
            self.snapshotter.commit(str(chain), self.key, lease=self.lease)
        except AlreadyExists:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Error):
            self.snapshotter.remove(self.key)


def bind_dir(mounts: Sequence[Any]) -> str | None:
    """The directory of a single writable bind mount, else None."""
    if len(mounts) != 1 or mounts[0].type not in ("bind", "rbind") or mounts[0].readonly:
        return None
    d = str(mounts[0].source)
    return d if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK) else None


@dataclass(frozen=True, slots=True)
class NativeUnpacker:
    """Unpack with pallet's own applier into ``target`` (reading blobs from ``content``)."""

    target: Snapshotter
    content: Store
    on_warning: Callable[[str], None] | None = None

    @property
    def snapshotter(self) -> str:
        return self.target.name

    def __call__(self, layers: Sequence[RootfsLayer], lease: str) -> Digest:
        return apply_layers(
            self.target, self.content, layers, lease=lease, on_warning=self.on_warning
        )

    def begin(self, parent: str, lease: str) -> UnpackTarget | None:
        return SnapshotTarget.prepare(self.target, parent, lease, bind_dir)


class ImageExporter:
    """An exporter bound to its stores (BuildKit's ``exporter.Exporter``).

    Args:
        content, images, leases: the target store (``images`` None: no image store, so no
            naming and no unpack, as BuildKit without one).
        snapshotter: holds the snapshots named by ``Source.ref``/``refs``.
        kind: ``image``, ``oci`` or ``docker``.
        unpacker: for ``unpack=true`` (default: :class:`NativeUnpacker` into ``snapshotter``).
        progress: receives the status events.
        stdout: where ``dest=-`` tarballs go (default: ``sys.stdout.buffer``).
        default_platform: the platform of a single image without one, and the one unpacked.
        remote_options: registry options for ``push``.
        workers: layers computed at once (default: 4).
        on_warning: receives BuildKit's warnings and the differ's skipped entries.
    """

    def __init__(
        self,
        *,
        content: Store,
        images: ImageStore | None,
        leases: LeaseManager,
        snapshotter: SourceSnapshotter,
        kind: str = "image",
        unpacker: Unpacker | None = None,
        progress: ProgressWriter | None = None,
        stdout: BinaryIO | None = None,
        default_platform: Platform | None = None,
        remote_options: RemoteOptions | None = None,
        workers: int | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise InvalidArgument(f"exporter type {kind!r}: want image, oci or docker")
        self.content = content
        self.images = images
        self.leases = leases
        self.snapshotter = snapshotter
        self.kind = kind
        self.unpacker = unpacker
        self.progress: ProgressWriter = progress or NullProgress()
        self.stdout = stdout
        self.default_platform = default_platform or Platform.default()
        self.remote_options = remote_options
        self.workers = workers or 4
        self.on_warning = on_warning or (lambda _msg: None)

    def resolve(self, attrs: Mapping[str, str]) -> ImageExporterInstance:
        """Parse and validate ``attrs`` (no I/O).

        Raises:
            InvalidArgument: with BuildKit's texts (see :mod:`.options`), or
                ``failed to parse <name>: …`` for a name that is not an image reference.
        """
        rest = dict(attrs)
        dest: str | None = None
        tar = True
        if self.kind != "image":
            dest = rest.pop("dest", None)
            if "tar" in rest:
                v = rest.pop("tar")
                try:
                    tar = True if v == "" else go_parse_bool(v)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"non-bool value specified for tar: {exc}") from None
            for key in ("push", "unpack", "push-by-digest", "store"):
                if key in rest:
                    raise InvalidArgument(
                        f"exporter option {key!r} is not supported by the {self.kind} exporter"
                    )
            if not tar and not dest:
                raise InvalidArgument(f"{self.kind} exporter with tar=false: dest is required")
        opts = resolve(rest, default_platform=self.default_platform)
        if opts.name and opts.name != "*":
            for n in opts.name.split(","):
                try:
                    Reference.parse(n, default_tag=False)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"failed to parse {n}: {exc}") from None
        return ImageExporterInstance(self, opts, dest=dest, tar=tar)


class ImageExporterInstance:
    """One resolved export (BuildKit's ``ExporterInstance``)."""

    def __init__(
        self, exporter: ImageExporter, opts: ImageExportOptions, *, dest: str | None, tar: bool
    ) -> None:
        self.exporter = exporter
        self.opts = opts
        self.dest = dest
        self.tar = tar

    @property
    def name(self) -> str:
        return _KINDS[self.exporter.kind]

    def export(self, source: Source) -> dict[str, str]:
        """Write, name, unpack and push the image (or stream the tarball).

        Returns the response map (``containerimage.digest``, ``containerimage.config.digest``,
        ``containerimage.descriptor``, ``image.name``).
        """
        e = self.exporter
        plan = plan_export(source, self.opts, default_platform=e.default_platform)
        if e.kind == "docker" and plan.multi:
            raise InvalidArgument(DOCKER_MANIFEST_LISTS)
        sink = self._tarball_sink_check()
        with temporary(e.leases) as lease:
            run = _Run(e, self.opts, plan, lease)
            graph = run.commit()
            if e.kind == "image":
                name = run.name_unpack_push(graph)
                return export_response(
                    graph.root, image_name=name, config_digest=graph.config_digest
                )
            return self._tarball(run, graph, sink)

    # -- oci / docker ----------------------------------------------------------------------

    def _tarball_sink_check(self) -> BinaryIO | None:
        e = self.exporter
        if e.kind == "image" or not self.tar:
            return None
        if self.dest in (None, "", "-"):
            out = e.stdout if e.stdout is not None else sys.stdout.buffer
            isatty = getattr(out, "isatty", None)
            if isatty is not None and isatty():
                raise InvalidArgument(
                    f"dest file is required for {e.kind} exporter. refusing to write to console"
                )
            return out
        return None

    def _tarball(self, run: _Run, graph: ImageGraph, sink: BinaryIO | None) -> dict[str, str]:
        from ..layout import ArchiveImage, Format, plan_layout, write_archive, write_directory

        e = self.exporter
        root = graph.root
        names = []
        if self.opts.name:
            for n in self.opts.target_names(run.plan.metadata, root.digest):
                try:
                    names.append(str(Reference.parse(n)))
                except InvalidArgument as exc:
                    raise InvalidArgument(f"failed to parse {n}: {exc}") from None
        ann = dict(root.annotations)
        if ANNOTATION_CREATED not in ann:
            when = run.plan.epoch.seconds if run.plan.epoch is not None else int(time.time())
            ann[ANNOTATION_CREATED] = datetime.fromtimestamp(when, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        image = ArchiveImage(target=replace(root, annotations=ann), names=tuple(names))
        fmt = Format.DOCKER if e.kind == "docker" else Format.OCI
        layout = plan_layout(e.content, [image], format=fmt)
        response = export_response(
            root, image_name=",".join(names), config_digest=graph.config_digest
        )
        with status(e.progress, "sending tarball"):
            if not self.tar:
                assert self.dest is not None
                write_directory(self.dest, e.content, layout)
            elif sink is not None:
                write_archive(sink, e.content, layout)
                with contextlib.suppress(AttributeError, OSError):
                    sink.flush()
            else:
                assert self.dest is not None
                _write_file_atomic(self.dest, lambda f: write_archive(f, e.content, layout))
        return response


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


class _TeeApply:
    """Applies a tar stream into a directory on a thread while the producer writes it.

    The producer's sink is wrapped (:meth:`wrap`): every write goes to the layer pipeline and,
    through a pipe with a 1 MiB buffer, to :func:`~pallet.archive.apply.apply_tar` running on
    its own thread. On exit the pipe is closed and the thread joined; its error (if any) is
    raised, and :attr:`diff_id` is what the applier hashed.
    """

    def __init__(self, root: str, on_warning: Callable[[str], None]) -> None:
        self.root = root
        self.on_warning = on_warning
        self.diff_id: Digest | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._w: BinaryIO | None = None

    def __enter__(self) -> _TeeApply:
        from ..archive.apply import apply_tar

        r, w = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        reader = os.fdopen(r, "rb", buffering=1 << 20)
        self._w = os.fdopen(w, "wb", buffering=1 << 20)

        def run() -> None:
            try:
                self.diff_id = apply_tar(reader, self.root, on_warning=self.on_warning).diff_id
            except BaseException as exc:
                self.error = exc
            finally:
                reader.close()

        self._thread = threading.Thread(target=run, name="pallet-unpack", daemon=True)
        self._thread.start()
        return self

    def wrap(self, sink: Sink) -> Sink:
        tee = self

        class _Both:
            def write(self, data: bytes | bytearray | memoryview, /) -> object:
                n = sink.write(data)
                if tee.error is None and tee._w is not None:
                    try:
                        tee._w.write(data)
                    except (BrokenPipeError, ValueError):
                        tee._w = None  # the applier stopped; its error is raised on exit
                return n

        return _Both()

    def __exit__(self, *exc: object) -> None:
        w, self._w = self._w, None
        if w is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                w.close()
        if self._thread is not None:
            self._thread.join()
        if exc[0] is None and self.error is not None:
            raise self.error


def _write_file_atomic(dest: str, write: Callable[[BinaryIO], object]) -> None:
    """Write ``dest`` through a temporary sibling, fsync, rename; nothing is left on failure."""
    d = os.path.dirname(os.path.abspath(dest))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pallet-", suffix=".tmp", dir=d)
    except OSError as exc:
        raise InvalidArgument(f"dest {dest}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# one export


@dataclass(frozen=True, slots=True)
class _Computed:
    layer: Layer
    rootfs: RootfsLayer


class _Run:
    """The state of one ``export`` call."""

    def __init__(
        self, e: ImageExporter, opts: ImageExportOptions, plan: ExportPlan, lease: str
    ) -> None:
        self.e = e
        self.opts = opts
        self.plan = plan
        self.lease = lease
        self.compression = Compression(opts.compression)
        self.layers: dict[str, list[_Computed]] = {}
        #: snapshots whose layer was applied while computed (unpack then finds the chain)
        self.teed: set[str] = set()
        self._lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------------

    def attach(self, dgst: Digest) -> None:
        """Hold ``dgst`` under the export's lease (blobs reused rather than written)."""
        with contextlib.suppress(NotFound, AlreadyExists):
            self.e.leases.add_resource(self.lease, Resource(type="content", id=str(dgst)))

    def _merge_labels(self, info: ContentInfo, labels: Mapping[str, str]) -> None:
        changed = {k: v for k, v in labels.items() if info.labels.get(k) != v}
        if changed:
            self.e.content.update(replace(info, labels=changed), [f"labels.{k}" for k in changed])

    def put(self, blob: Blob) -> None:
        """Write a config/manifest/index blob (verified against its digest) with its labels."""
        store = self.e.content
        d = blob.descriptor
        try:
            info = store.info(d.digest)
        except NotFound:
            info = None
        if info is None:
            try:
                with store.writer(
                    f"export-{os.urandom(16).hex()}",
                    total=d.size,
                    expected=d.digest,
                    lease=self.lease,
                ) as w:
                    if w.offset:
                        w.truncate(0)
                    w.write(blob.data)
                    w.commit(d.size, d.digest, labels=dict(blob.labels))
                    return
            except AlreadyExists:
                info = store.info(d.digest)
        self._merge_labels(info, blob.labels)
        self.attach(d.digest)

    # -- layers --------------------------------------------------------------------------------

    def chain(self, key: str) -> list[SnapshotInfo]:
        """The committed snapshots from the bottom to ``key``."""
        out: list[SnapshotInfo] = []
        seen: set[str] = set()
        k = key
        while k:
            if k in seen:
                raise FailedPrecondition(f"snapshot {key}: its parent chain has a cycle")
            seen.add(k)
            info = self.e.snapshotter.stat(k)
            if info.kind != "committed":
                raise FailedPrecondition(f"snapshot {k}: not committed")
            out.append(info)
            k = info.parent
        out.reverse()
        return out

    def rewrite_epoch(self, epoch: Timestamp | None) -> int | None:
        return epoch.seconds if self.opts.rewrite_timestamp and epoch is not None else None

    def layer(
        self, info: SnapshotInfo, epoch: int | None, tee: UnpackTarget | None = None
    ) -> _Computed:
        """The layer of one snapshot: its recorded blob, or its diff through the pipeline.

        With ``tee``, a computed layer's tar stream is also applied into ``tee.dir`` as it is
        produced; the caller commits or aborts ``tee`` (``self.teed`` says whether it was used).
        """
        e = self.e
        lbl = info.labels
        lazy = _labels.LAZY in lbl
        blob = lbl.get(_labels.LAYER_BLOB)
        started = time.time()
        desc: Descriptor | None = None
        diff_id: Digest | None = None
        rewritten = False
        # a blob recorded by an earlier export of this snapshot is reused only if it was made
        # with the same epoch; a fixed blob (a base layer: no epoch label) always is
        recorded_epoch = lbl.get(_labels.LAYER_EPOCH)
        if blob and (
            lazy
            or recorded_epoch is None
            or recorded_epoch == ("" if epoch is None else str(epoch))
        ):
            try:
                desc = Descriptor(
                    media_type=lbl[_labels.LAYER_MEDIA_TYPE],
                    digest=Digest.parse(blob),
                    size=int(lbl.get(_labels.LAYER_SIZE) or -1),
                )
                diff_id = Digest.parse(lbl[_labels.LAYER_DIFF_ID])
                try:
                    cinfo = e.content.info(desc.digest)
                    desc = replace(desc, size=cinfo.size)
                except NotFound:
                    # a lazy base layer that was never downloaded: fine for a push-only
                    # export (the registry mounts it from where the base came from)
                    if not (lazy and self.lazy_ok() and desc.size > 0):
                        raise
            except (KeyError, ValueError, InvalidArgument, NotFound) as exc:
                if lazy:
                    raise NotFound(
                        f"snapshot {info.name}: its layer blob {blob} is not available: {exc}"
                    ) from None
                desc = None
            if desc is not None:
                rewritten = not lazy and _labels.LAYER_EPOCH in lbl and epoch is not None
                if self.opts.force_compression:
                    res = convert_blob(
                        e.content,
                        desc,
                        self.compression,
                        self.opts.compression_level,
                        oci=self.opts.oci_mediatypes,
                        lease=self.lease,
                        force=True,
                    )
                    desc, diff_id = res.descriptor, res.diff_id
                self.attach(desc.digest)
        if desc is None or diff_id is None:
            dest = lbl.get(_labels.LAYER_DEST)
            lower = None if dest is not None or not info.parent else self._path(info.parent)
            upper = self._path(info.name)
            dopts = DiffOptions(source_date_epoch=epoch, dest=dest or "", on_warning=e.on_warning)

            progress_id = f"layer {info.name}"

            def produce(sink: Sink) -> None:
                write_diff(
                    lower, upper, _CountingSink(sink, e.progress, progress_id, started), dopts
                )

            if tee is None:
                res = write_layer(
                    produce,
                    e.content,
                    compression=self.compression,
                    level=self.opts.compression_level,
                    oci=self.opts.oci_mediatypes,
                    lease=self.lease,
                )
            else:
                with _TeeApply(tee.dir, e.on_warning) as t:
                    res = write_layer(
                        lambda sink: produce(t.wrap(sink)),
                        e.content,
                        compression=self.compression,
                        level=self.opts.compression_level,
                        oci=self.opts.oci_mediatypes,
                        lease=self.lease,
                    )
                if t.diff_id != res.diff_id:
                    raise DigestMismatch(
                        f"layer {res.descriptor.digest}: applied {t.diff_id}, "
                        f"computed {res.diff_id}"
                    )
                self.teed.add(info.name)
            desc, diff_id = res.descriptor, res.diff_id
            rewritten = epoch is not None
            self.attach(desc.digest)
            self._record(info, desc, diff_id, epoch)
        if rewritten:
            assert epoch is not None
            desc = replace(desc, annotations={**desc.annotations, ANNOTATION_REWRITTEN: str(epoch)})
        e.progress.write(
            finished(
                f"layer {info.name}",
                f"layer {desc.digest}",
                desc.size,
                parent="exporting layers",
                started=started,
            )
        )
        created = None
        if not lazy and info.created_at is not None:
            created = Timestamp.from_datetime(info.created_at)
        return _Computed(
            layer=Layer(
                descriptor=desc,
                diff_id=diff_id,
                created_at=created,
                description=lbl.get(_labels.LAYER_DESCRIPTION, ""),
            ),
            rootfs=RootfsLayer(blob=desc, diff_id=diff_id),
        )

    def lazy_ok(self) -> bool:
        """Whether a lazy layer may stay undownloaded: a push-only image export."""
        return self.e.kind == "image" and not self.opts.store and not self.opts.force_compression

    def _path(self, key: str) -> str:
        return self.e.snapshotter.path(key)

    def _record(
        self, info: SnapshotInfo, desc: Descriptor, diff_id: Digest, epoch: int | None
    ) -> None:
        """Remember the blob on the snapshot so that the next output of the export reuses it."""
        new = {
            _labels.LAYER_BLOB: str(desc.digest),
            _labels.LAYER_MEDIA_TYPE: desc.media_type,
            _labels.LAYER_SIZE: str(desc.size),
            _labels.LAYER_DIFF_ID: str(diff_id),
            _labels.LAYER_EPOCH: "" if epoch is None else str(epoch),
        }
        merged = {**info.labels, **new}
        # best effort: a snapshotter that refuses labels only loses the reuse
        with contextlib.suppress(Error):
            self.e.snapshotter.update(replace(info, labels=merged), [f"labels.{k}" for k in new])

    def compute_layers(self) -> dict[str, list[Layer]]:
        """Every platform's layers, bottom first; each snapshot computed once, in parallel."""
        jobs: dict[tuple[str, int | None], SnapshotInfo] = {}
        wanted: dict[str, list[tuple[str, int | None]]] = {}
        for t in self.plan.targets:
            if not t.ref:
                continue
            epoch = self.rewrite_epoch(t.epoch)
            keys = []
            for info in self.chain(t.ref):
                jobs.setdefault((info.name, epoch), info)
                keys.append((info.name, epoch))
            wanted[t.id] = keys
        results: dict[tuple[str, int | None], _Computed] = {}
        streamed = self._streamed_chain(wanted)
        if jobs:
            with ThreadPoolExecutor(
                max_workers=max(1, min(self.e.workers, len(jobs))),
                thread_name_prefix="pallet-layer",
            ) as pool:
                futs: dict[tuple[str, int | None], Future[_Computed]] = {
                    k: pool.submit(self.layer, info, k[1])
                    for k, info in jobs.items()
                    if k not in streamed
                }
                chain_fut: Future[dict[tuple[str, int | None], _Computed]] | None = None
                if streamed:
                    chain_fut = pool.submit(self._compute_unpacking, streamed, jobs)
                try:
                    for k, f in futs.items():
                        results[k] = f.result()
                    if chain_fut is not None:
                        results.update(chain_fut.result())
                except BaseException:
                    for f in futs.values():
                        f.cancel()
                    raise
        out: dict[str, list[Layer]] = {}
        for tid, keys in wanted.items():
            self.layers[tid] = [results[k] for k in keys]
            out[tid] = [results[k].layer for k in keys]
        return out

    # -- unpacking while computing ---------------------------------------------------------------

    def _unpack_target_id(self) -> str | None:
        """The platform that ``unpack`` will unpack (BuildKit: the default platform's)."""
        if not self.plan.multi:
            return self.plan.targets[0].id if self.plan.targets else None
        want = normalize(self.e.default_platform)
        for t in self.plan.targets:
            p = normalize(t.platform)
            if (p.os, p.architecture, p.variant) == (want.os, want.architecture, want.variant):
                return t.id
        return None

    def _streamed_chain(
        self, wanted: Mapping[str, list[tuple[str, int | None]]]
    ) -> list[tuple[str, int | None]]:
        """The unpack platform's chain when its layers can be applied while computed."""
        e, opts = self.e, self.opts
        if not (opts.unpack and opts.store and e.images is not None and e.kind == "image"):
            return []
        unpacker = e.unpacker or NativeUnpacker(e.snapshotter, e.content, e.on_warning)
        if not hasattr(unpacker, "begin"):
            return []
        tid = self._unpack_target_id()
        return list(wanted.get(tid, [])) if tid is not None else []

    def _compute_unpacking(
        self,
        chain: Sequence[tuple[str, int | None]],
        jobs: Mapping[tuple[str, int | None], SnapshotInfo],
    ) -> dict[tuple[str, int | None], _Computed]:
        """Compute the unpack chain bottom-up, each new layer teed into its snapshot."""
        e = self.e
        unpacker = e.unpacker or NativeUnpacker(e.snapshotter, e.content, e.on_warning)
        assert hasattr(unpacker, "begin")
        out: dict[tuple[str, int | None], _Computed] = {}
        done: list[RootfsLayer] = []
        parent = ""
        for k in chain:
            info = jobs[k]
            recorded = _labels.LAYER_BLOB in info.labels
            target: UnpackTarget | None = None
            if not recorded:
                if done:  # the layers below must be snapshots before this one can be prepared
                    parent = str(unpacker(done, self.lease))
                target = unpacker.begin(parent, self.lease)
            try:
                c = self.layer(info, k[1], tee=target)
            except BaseException:
                if target is not None:
                    target.abort()
                raise
            out[k] = c
            done.append(c.rootfs)
            if target is not None:
                if info.name in self.teed:
                    chain_id = chain_ids([ly.diff_id for ly in done])[-1]
                    target.commit(chain_id)
                    parent = str(chain_id)
                else:  # the layer was reused after all: unpack it from its blob later
                    target.abort()
        return out

    def commit(self) -> ImageGraph:
        """BuildKit's ``ImageWriter.Commit``: layers, then config/manifest/index blobs."""
        e = self.e
        if self.opts.rewrite_timestamp and all(t.epoch is None for t in self.plan.targets):
            e.on_warning(REWRITE_TIMESTAMP_WITHOUT_EPOCH)
        with status(e.progress, "exporting layers"):
            layers = self.compute_layers()
        for t in self.plan.targets:
            ep = self.rewrite_epoch(t.epoch)
            if ep is not None and t.ref:
                when = datetime.fromtimestamp(ep, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
                with status(e.progress, f"rewriting layers with source-date-epoch {ep} ({when})"):
                    pass
                break
        graph = assemble(self.plan, layers)
        for w in graph.warnings:
            e.on_warning(w)
        for blob in graph.blobs():
            with status(e.progress, blob.progress):
                self.put(blob)
        return graph

    # -- image: name, unpack, push --------------------------------------------------------------

    def created(self) -> datetime:
        if self.plan.epoch is not None:
            return self.plan.epoch.to_datetime()
        return datetime.now(UTC)

    def name_unpack_push(self, graph: ImageGraph) -> str:
        e, opts = self.e, self.opts
        root = graph.root
        name = opts.image_name(self.plan.metadata, root.digest)
        targets = opts.target_names(self.plan.metadata, root.digest)
        record_target = Descriptor(media_type=root.media_type, digest=root.digest, size=root.size)
        store = opts.store and e.images is not None
        for target in targets:
            if store:
                assert e.images is not None
                last = target
                with status(e.progress, f"naming to {target}"):
                    for rn in opts.record_names(target, root.digest):
                        img = Image(name=rn, target=record_target, created_at=self.created())
                        try:
                            e.images.update(img)
                        except NotFound:
                            try:
                                e.images.create(img)
                            except AlreadyExists:  # created meanwhile by another export
                                e.images.update(img)
                        last = rn
                if opts.unpack:
                    self.unpack(graph, last)
            if opts.push:
                self.push(root, target)
        return name

    def _unpack_image(self, graph: ImageGraph) -> PlatformImage | None:
        if not self.plan.multi:
            return graph.images[0]
        want = normalize(self.e.default_platform)
        for img in graph.images:
            p = normalize(img.platform)
            if (p.os, p.architecture, p.variant) == (want.os, want.architecture, want.variant):
                return img
        return None

    def unpack(self, graph: ImageGraph, name: str) -> None:
        e = self.e
        img = self._unpack_image(graph)
        if img is None or not self.layers.get(img.id):
            return  # BuildKit: silently skipped (no matching platform, or no layers)
        unpacker = e.unpacker or NativeUnpacker(e.snapshotter, e.content, e.on_warning)
        with status(e.progress, f"unpacking to {name}"):
            layers = [c.rootfs for c in self.layers[img.id]]
            chain = unpacker(layers, self.lease)
            key = f"{_labels.GC_REF_SNAPSHOT_PREFIX}{unpacker.snapshotter}"
            info = e.content.info(img.config.digest)
            self._merge_labels(info, {key: str(chain)})

    def push(self, root: Descriptor, target: str) -> None:
        from ..remote import Options, push

        e = self.e
        try:
            ref = Reference.parse(target, default_tag=not self.opts.push_by_digest)
        except InvalidArgument as exc:
            raise InvalidArgument(f"failed to push {target}: {exc}") from None
        options = self.remote_options() or Options()
        if self.opts.insecure:
            options = options.with_insecure(ref.registry)
        manifest_status = f"pushing manifest for {ref}@{root.digest}"
        started: list[Progress] = []

        def on_progress(p: Progress) -> None:
            if p.parent.startswith("pushing manifest for "):
                if not started:
                    started.append(
                        Progress(id=manifest_status, name=manifest_status, started=time.time())
                    )
                    e.progress.write(started[0])
                p = replace(p, parent=manifest_status)
            e.progress.write(p)

        try:
            push(
                e.content,
                root,
                [str(ref)],
                by_digest=self.opts.push_by_digest,
                options=options,
                on_progress=on_progress,
            )
        except Error as exc:
            if started:
                e.progress.write(replace(started[0], completed=time.time(), error=str(exc)))
            exc.args = (f"failed to push {target}: {exc}",)
            raise
        if not started:
            started.append(Progress(id=manifest_status, name=manifest_status, started=time.time()))
            e.progress.write(started[0])
        e.progress.write(replace(started[0], completed=time.time()))

    def remote_options(self) -> RemoteOptions | None:
        return self.e.remote_options
