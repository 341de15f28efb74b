"""The exporter with its I/O: BuildKit's ``image`` exporter and its ``oci``/``docker`` siblings.

:class:`ImageExporter` is bound to stores given as protocols (content, images, leases, a
snapshotter holding the export's snapshots, an :class:`~.unpack.Unpacker`), so the same code
exports into the embedded store and into containerd. ``resolve(attrs)`` validates every option
(no I/O); the instance's ``export(source)`` does BuildKit's ``Export``:

1. a temporary lease (released at the end; what survives is what an image record reaches);
2. ``exporting layers``: the layer of every snapshot in every platform's chain, in parallel
   (:class:`~.layers.LayerBuilder`): a blob recorded on the snapshot is reused, any other
   layer is diffed through the one-pass compression pipeline;
3. config, manifests, index (:mod:`.plan`), written in BuildKit's order with their GC labels;
4. ``image``: per name ``naming to`` (update, else create; ``name-canonical`` records),
   ``unpacking to`` (by chain ID through the :class:`~.unpack.Unpacker`, then the config's
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
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

from .. import atomicfile
from .. import labels as _labels
from ..content import Info as ContentInfo
from ..content import Store
from ..errors import AlreadyExists, Error, InvalidArgument, NotFound
from ..images import Image, ImageStore
from ..leases import LeaseManager, temporary
from ..oci.descriptor import Descriptor, Platform
from ..oci.reference import Reference
from ..progress import NullProgress, Progress, ProgressWriter, status
from . import Source, export_response
from ._platforms import normalize
from .config import Layer
from .layers import LayerBuilder, SourceSnapshotter, hold, rootfs_layers
from .manifest import Blob
from .options import REWRITE_TIMESTAMP_WITHOUT_EPOCH, ImageExportOptions, go_parse_bool, resolve
from .plan import ExportPlan, ImageGraph, assemble, plan_export
from .unpack import NativeUnpacker, Streaming, Unpacker, is_streaming

if TYPE_CHECKING:
    from ..remote import Options as RemoteOptions

__all__ = [
    "ANNOTATION_CREATED",
    "DOCKER_MANIFEST_LISTS",
    "ImageExporter",
    "ImageExporterInstance",
]

#: the descriptor annotation of the tarball exporters (spec §7.2)
ANNOTATION_CREATED = "org.opencontainers.image.created"
DOCKER_MANIFEST_LISTS = "docker exporter does not currently support exporting manifest lists"

_KINDS = {
    "image": "exporting to image",
    "oci": "exporting to oci image format",
    "docker": "exporting to docker image format",
}


class ImageExporter:
    """An exporter bound to its stores (BuildKit's ``exporter.Exporter``).

    Args:
        content, images, leases: the target store (``images`` None: no image store, so no
            naming and no unpack, as BuildKit without one).
        snapshotter: holds the snapshots named by ``Source.ref``/``refs``.
        kind: ``image``, ``oci`` or ``docker``.
        unpacker: for ``unpack=true`` (default: :class:`NativeUnpacker` into ``snapshotter``).
        progress: receives the status events of every export that is not given its own.
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

    def export(self, source: Source, *, progress: ProgressWriter | None = None) -> dict[str, str]:
        """Write, name, unpack and push the image (or stream the tarball).

        ``progress`` receives this export's status events (default: the exporter's).

        Returns the response map (``containerimage.digest``, ``containerimage.config.digest``,
        ``containerimage.descriptor``, ``image.name``).
        """
        exporter = self.exporter
        plan = plan_export(source, self.opts, default_platform=exporter.default_platform)
        if exporter.kind == "docker" and plan.multi:
            raise InvalidArgument(DOCKER_MANIFEST_LISTS)
        sink = self._tarball_sink_check()
        with temporary(exporter.leases) as lease:
            if progress is None:
                progress = exporter.progress
            job = _ExportJob(exporter, self.opts, plan, lease, progress)
            graph = job.commit()
            if exporter.kind == "image":
                name = job.name_unpack_push(graph)
                return export_response(
                    graph.root, image_name=name, config_digest=graph.config_digest
                )
            return self._tarball(job, graph, sink)

    # -- oci / docker ----------------------------------------------------------------------

    def _tarball_sink_check(self) -> BinaryIO | None:
        exporter = self.exporter
        if exporter.kind == "image" or not self.tar:
            return None
        if self.dest in (None, "", "-"):
            out = exporter.stdout if exporter.stdout is not None else sys.stdout.buffer
            isatty = getattr(out, "isatty", None)
            if isatty is not None and isatty():
                raise InvalidArgument(
                    f"dest file is required for {exporter.kind} exporter. "
                    "refusing to write to console"
                )
            return out
        return None

    def _tarball(self, job: _ExportJob, graph: ImageGraph, sink: BinaryIO | None) -> dict[str, str]:
        from ..layout import ArchiveImage, Format, plan_layout, write_archive, write_directory

        exporter = self.exporter
        root = graph.root
        names = []
        if self.opts.name:
            for n in self.opts.target_names(job.plan.metadata, root.digest):
                try:
                    names.append(str(Reference.parse(n)))
                except InvalidArgument as exc:
                    raise InvalidArgument(f"failed to parse {n}: {exc}") from None
        ann = dict(root.annotations)
        if ANNOTATION_CREATED not in ann:
            when = job.plan.epoch.seconds if job.plan.epoch is not None else int(time.time())
            ann[ANNOTATION_CREATED] = datetime.fromtimestamp(when, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        image = ArchiveImage(target=replace(root, annotations=ann), names=tuple(names))
        fmt = Format.DOCKER if exporter.kind == "docker" else Format.OCI
        layout = plan_layout(exporter.content, [image], format=fmt)
        response = export_response(
            root, image_name=",".join(names), config_digest=graph.config_digest
        )
        with status(job.progress, "sending tarball"):
            if not self.tar:
                assert self.dest is not None
                try:
                    write_directory(self.dest, exporter.content, layout)
                except OSError as exc:
                    raise InvalidArgument(f"dest {self.dest}: {exc.strerror or exc}") from None
            elif sink is not None:
                write_archive(sink, exporter.content, layout)
                with contextlib.suppress(AttributeError, OSError):
                    sink.flush()
            else:
                assert self.dest is not None
                _write_file_atomic(self.dest, lambda f: write_archive(f, exporter.content, layout))
        return response


def _write_file_atomic(dest: str, write: Callable[[BinaryIO], object]) -> None:
    """Write ``dest`` through a temporary sibling, fsync, rename; nothing is left on failure."""
    try:
        out = atomicfile.create(dest, 0o644, prefix=".pallet-", suffix=".tmp")
    except OSError as exc:
        raise InvalidArgument(f"dest {dest}: {exc.strerror or exc}") from None
    try:
        with out as f:
            write(f)
    except OSError as exc:  # named by the destination, not by the temporary file
        raise InvalidArgument(f"dest {dest}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# one export


def _unpack_platform(plan: ExportPlan, default_platform: Platform) -> str | None:
    """The id of the platform that ``unpack`` unpacks (BuildKit: the default platform's)."""
    if not plan.multi:
        return plan.targets[0].id if plan.targets else None
    want = normalize(default_platform)
    for target in plan.targets:
        p = normalize(target.platform)
        if (p.os, p.architecture, p.variant) == (want.os, want.architecture, want.variant):
            return target.id
    return None


class _ExportJob:
    """One call of :meth:`ImageExporterInstance.export`: its plan, lease, progress and layers."""

    def __init__(
        self,
        exporter: ImageExporter,
        opts: ImageExportOptions,
        plan: ExportPlan,
        lease: str,
        progress: ProgressWriter,
    ) -> None:
        self.exporter = exporter
        self.opts = opts
        self.plan = plan
        self.lease = lease
        self.progress = progress
        self.unpacker: Unpacker = exporter.unpacker or NativeUnpacker(
            exporter.snapshotter, exporter.content, exporter.on_warning
        )
        #: the platform that ``unpack`` unpacks, if any
        self.unpack_id = _unpack_platform(plan, exporter.default_platform)
        self.builder = LayerBuilder(
            content=exporter.content,
            leases=exporter.leases,
            lease=lease,
            snapshotter=exporter.snapshotter,
            options=opts,
            progress=progress,
            on_warning=exporter.on_warning,
            workers=exporter.workers,
            # a lazy layer may stay undownloaded in a push-only image export
            allow_lazy=exporter.kind == "image" and not opts.store and not opts.force_compression,
        )
        #: every platform's layers by target id, bottom first (set by :meth:`commit`)
        self.layers: dict[str, list[Layer]] = {}

    # -- commit ----------------------------------------------------------------------------------

    def commit(self) -> ImageGraph:
        """BuildKit's ``ImageWriter.Commit``: layers, then config/manifest/index blobs."""
        exporter = self.exporter
        if self.opts.rewrite_timestamp and all(t.epoch is None for t in self.plan.targets):
            exporter.on_warning(REWRITE_TIMESTAMP_WITHOUT_EPOCH)
        with status(self.progress, "exporting layers"):
            self.layers = self.builder.build_all(
                self.plan.targets, unpacker=self._unpack_while_building(), unpack_id=self.unpack_id
            )
        for target in self.plan.targets:
            epoch = self.builder.layer_epoch(target)
            if epoch is not None and target.ref:
                when = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
                with status(
                    self.progress, f"rewriting layers with source-date-epoch {epoch} ({when})"
                ):
                    pass
                break
        graph = assemble(self.plan, self.layers)
        for warning in graph.warnings:
            exporter.on_warning(warning)
        for blob in graph.blobs():
            with status(self.progress, blob.progress):
                self.put(blob)
        return graph

    def _unpack_while_building(self) -> Streaming | None:
        """The unpacker, when it will unpack and can be filled while the layers are built."""
        exporter, opts = self.exporter, self.opts
        will_unpack = opts.unpack and opts.store and exporter.images is not None
        if will_unpack and exporter.kind == "image" and is_streaming(self.unpacker):
            return self.unpacker
        return None

    def put(self, blob: Blob) -> None:
        """Write a config/manifest/index blob (verified against its digest) with its labels."""
        store = self.exporter.content
        descriptor = blob.descriptor
        try:
            info = store.info(descriptor.digest)
        except NotFound:
            info = None
        if info is None:
            try:
                with store.writer(
                    f"export-{os.urandom(16).hex()}",
                    total=descriptor.size,
                    expected=descriptor.digest,
                    lease=self.lease,
                ) as w:
                    if w.offset:
                        w.truncate(0)
                    w.write(blob.data)
                    w.commit(descriptor.size, descriptor.digest, labels=dict(blob.labels))
                    return
            except AlreadyExists:
                info = store.info(descriptor.digest)
        self._merge_labels(info, blob.labels)
        hold(self.exporter.leases, self.lease, descriptor.digest)

    def _merge_labels(self, info: ContentInfo, labels: Mapping[str, str]) -> None:
        changed = {k: v for k, v in labels.items() if info.labels.get(k) != v}
        if changed:
            self.exporter.content.update(
                replace(info, labels=changed), [f"labels.{k}" for k in changed]
            )

    # -- image: name, unpack, push -------------------------------------------------------------

    def created(self) -> datetime:
        if self.plan.epoch is not None:
            return self.plan.epoch.to_datetime()
        return datetime.now(UTC)

    def name_unpack_push(self, graph: ImageGraph) -> str:
        exporter, opts = self.exporter, self.opts
        root = graph.root
        name = opts.image_name(self.plan.metadata, root.digest)
        targets = opts.target_names(self.plan.metadata, root.digest)
        record_target = Descriptor(media_type=root.media_type, digest=root.digest, size=root.size)
        store = opts.store and exporter.images is not None
        for target in targets:
            if store:
                assert exporter.images is not None
                last = target
                with status(self.progress, f"naming to {target}"):
                    for record_name in opts.record_names(target, root.digest):
                        img = Image(
                            name=record_name, target=record_target, created_at=self.created()
                        )
                        try:
                            exporter.images.update(img)
                        except NotFound:
                            try:
                                exporter.images.create(img)
                            except AlreadyExists:  # created meanwhile by another export
                                exporter.images.update(img)
                        last = record_name
                if opts.unpack:
                    self.unpack(graph, last)
            if opts.push:
                self.push(root, target)
        return name

    def unpack(self, graph: ImageGraph, name: str) -> None:
        image = next((img for img in graph.images if img.id == self.unpack_id), None)
        if image is None or not self.layers.get(image.id):
            return  # BuildKit: silently skipped (no matching platform, or no layers)
        with status(self.progress, f"unpacking to {name}"):
            chain = self.unpacker(rootfs_layers(self.layers[image.id]), self.lease)
            key = f"{_labels.GC_REF_SNAPSHOT_PREFIX}{self.unpacker.snapshotter}"
            info = self.exporter.content.info(image.config.digest)
            self._merge_labels(info, {key: str(chain)})

    def push(self, root: Descriptor, target: str) -> None:
        from ..remote import Options, push

        try:
            ref = Reference.parse(target, default_tag=not self.opts.push_by_digest)
        except InvalidArgument as exc:
            raise InvalidArgument(f"failed to push {target}: {exc}") from None
        options = self.exporter.remote_options or Options()
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
                    self.progress.write(started[0])
                p = replace(p, parent=manifest_status)
            self.progress.write(p)

        try:
            push(
                self.exporter.content,
                root,
                [str(ref)],
                by_digest=self.opts.push_by_digest,
                options=options,
                on_progress=on_progress,
            )
        except Error as exc:
            if started:
                self.progress.write(replace(started[0], completed=time.time(), error=str(exc)))
            exc.args = (f"failed to push {target}: {exc}",)
            raise
        if not started:
            started.append(Progress(id=manifest_status, name=manifest_status, started=time.time()))
            self.progress.write(started[0])
        self.progress.write(replace(started[0], completed=time.time()))
