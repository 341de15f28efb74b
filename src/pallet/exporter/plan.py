"""BuildKit's ``ImageWriter.Commit`` without the I/O, in two pure steps.

The export wiring does::

    opts = resolve(attrs)                                    # options.py, at resolve time
    plan = plan_export(source, opts, default_platform=Platform.default())
    layers = {t.id: compute_layers(t.ref) for t in plan.targets}   # snapshots -> diff -> blobs
    graph = assemble(plan, layers)
    for blob in graph.blobs():                               # manifest, config, ..., index
        write(blob.data, blob.descriptor, labels=blob.labels)   # progress: blob.progress
    root = graph.root                                        # then name, unpack, push

:func:`plan_export` makes every check BuildKit makes before computing layers (platforms,
refs, annotations, media types) and picks each platform's config, base config, inline cache,
annotations and epoch. :func:`assemble` builds the config, manifest and (for several refs) the
index of every platform from the computed layers, in BuildKit's write order, with the
garbage-collection labels that make the root descriptor keep the whole graph.

Single vs index: ``Source.refs`` empty gives one manifest (from ``Source.ref``); its descriptor
gets the platform and the manifest-descriptor annotations, and index annotations are an error.
``Source.refs`` non-empty gives an index over ``refs.platforms`` in its order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._gotime import Timestamp
from ..errors import InvalidArgument
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from . import (
    META_BASE_CONFIG,
    META_IMAGE_CONFIG,
    META_INLINE_CACHE,
    META_PLATFORMS,
    Source,
)
from .annotations import INDEX_ANNOTATIONS_SINGLE, AnnotationGroup, Annotations
from .config import ImageConfig, Layer, build_config, parse_platforms
from .manifest import Blob, config_blob, index_blob, layer_descriptor, manifest_blob
from .options import ImageExportOptions

__all__ = [
    "ExportPlan",
    "ImageGraph",
    "PlatformImage",
    "PlatformTarget",
    "assemble",
    "parse_key",
    "plan_export",
]


def parse_key(metadata: Mapping[str, bytes], key: str, platform_id: str | None) -> bytes | None:
    """``<key>/<platform id>`` if present, else ``<key>`` (BuildKit ``exptypes.ParseKey``)."""
    if platform_id is not None:
        v = metadata.get(f"{key}/{platform_id}")
        if v is not None:
            return v
    return metadata.get(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformTarget:
    """One manifest to build: which snapshot, which config, which annotations."""

    id: str
    platform: Platform
    #: snapshot key whose layer chain becomes the manifest's layers (None: no layers)
    ref: str | None
    #: the frontend's config (``b""``: the default config for ``platform``)
    config: bytes
    base_config: bytes | None = None
    inline_cache: bytes | None = None
    epoch: Timestamp | None = None
    annotations: Annotations = field(default_factory=Annotations)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportPlan:
    """Everything :func:`assemble` needs besides the layers."""

    multi: bool
    targets: tuple[PlatformTarget, ...]
    oci: bool
    prefer_nondist: bool = False
    #: the export's epoch (per-platform epochs are on the targets); also the image CreatedAt
    epoch: Timestamp | None = None
    #: annotations of the index JSON and of the root (index) descriptor
    index_annotations: Mapping[str, str] = field(default_factory=dict)
    index_descriptor_annotations: Mapping[str, str] = field(default_factory=dict)
    #: source metadata merged with the option metadata
    metadata: Mapping[str, bytes] = field(default_factory=dict)


def plan_export(
    source: Source, opts: ImageExportOptions, *, default_platform: Platform
) -> ExportPlan:
    """The checks and choices BuildKit's ``Commit`` makes before computing layers.

    ``default_platform`` is the daemon's platform: the single image's platform when neither
    ``refs.platforms`` nor the config say otherwise.

    Raises:
        InvalidArgument: ``unable to export multiple refs, missing platforms mapping``, the
            platform errors of :func:`~pallet.exporter.config.parse_platforms`, a bad
            ``source.date.epoch``, ``invalid annotation: no platform <p> found in source``,
            ``cannot export annotations with "oci-mediatypes=false"``, ``cannot export multiple
            platforms without multi-platform enabled``, ``index annotations not supported for
            single platform export``, ``failed to find ref for ID <id>``.
    """
    metadata = opts.merged_metadata(source.metadata)
    refs = dict(source.refs)
    if refs and META_PLATFORMS not in metadata:
        raise InvalidArgument("unable to export multiple refs, missing platforms mapping")
    multi = bool(refs)
    entries = parse_platforms(metadata, default_platform=default_platform)
    epoch = opts.epoch(metadata)

    from_meta, _ = AnnotationGroup.parse(
        ((k, v.decode("utf-8", "surrogateescape")) for k, v in metadata.items()),
        default_platform=default_platform,
    )
    group = from_meta.merge(opts.annotations)  # the options win over the frontend
    group.validate(refs=refs, oci=opts.oci_mediatypes)

    def find_ref(pid: str) -> tuple[bool, str | None]:
        if not refs:
            return True, source.ref
        if pid in refs:
            return True, refs[pid]
        if len(refs) == 1:
            return True, next(iter(refs.values()))
        return False, None

    if not multi and len(entries) > 1:
        raise InvalidArgument("cannot export multiple platforms without multi-platform enabled")

    targets: list[PlatformTarget] = []
    for e in entries:
        ok, ref = find_ref(e.id)
        if not ok:
            raise InvalidArgument(f"failed to find ref for ID {e.id}")
        ann = group.for_platform(e.platform)
        if not multi and (ann.index or ann.index_descriptor):
            raise InvalidArgument(INDEX_ANNOTATIONS_SINGLE)
        targets.append(
            PlatformTarget(
                id=e.id,
                platform=e.platform,
                ref=ref,
                config=parse_key(metadata, META_IMAGE_CONFIG, e.id) or b"",
                base_config=parse_key(metadata, META_BASE_CONFIG, e.id),
                inline_cache=parse_key(metadata, META_INLINE_CACHE, e.id),
                epoch=opts.epoch(metadata, e.id),
                annotations=Annotations(
                    manifest=ann.manifest, manifest_descriptor=ann.manifest_descriptor
                ),
            )
        )
    root_ann = group.for_platform(None)
    return ExportPlan(
        multi=multi,
        targets=tuple(targets),
        oci=opts.oci_mediatypes,
        prefer_nondist=opts.prefer_nondist_layers,
        epoch=epoch,
        index_annotations=dict(root_ann.index) if multi else {},
        index_descriptor_annotations=dict(root_ann.index_descriptor) if multi else {},
        metadata=metadata,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformImage:
    """The blobs of one platform's image."""

    id: str
    platform: Platform
    #: its descriptor has the platform and the manifest-descriptor annotations
    manifest: Blob
    config: Blob
    image_config: ImageConfig
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageGraph:
    """Everything one export writes; :meth:`blobs` gives the write order."""

    root: Descriptor
    images: tuple[PlatformImage, ...]
    index: Blob | None = None
    warnings: tuple[str, ...] = ()

    def blobs(self) -> tuple[Blob, ...]:
        """BuildKit's order: each manifest then its config, the index last (children first)."""
        out: list[Blob] = []
        for img in self.images:
            out += [img.manifest, img.config]
        if self.index is not None:
            out.append(self.index)
        return tuple(out)

    @property
    def config_digest(self) -> Digest | None:
        """The config digest of a single-manifest export (response key), else None."""
        return self.images[0].config.digest if self.index is None else None


def assemble(plan: ExportPlan, layers: Mapping[str, Sequence[Layer]]) -> ImageGraph:
    """Config, manifest and index blobs from the computed layers (bottom first, per target id).

    A target without an entry in ``layers`` has no layers.

    Raises:
        InvalidArgument: the config errors of :func:`~pallet.exporter.config.build_config`.
    """
    images: list[PlatformImage] = []
    warnings: list[str] = []
    for t in plan.targets:
        chain = tuple(layers.get(t.id, ()))
        descs: list[Descriptor] = []
        for layer in chain:
            d, warning = layer_descriptor(
                layer.descriptor, oci=plan.oci, prefer_nondist=plan.prefer_nondist
            )
            descs.append(d)
            if warning:
                warnings.append(warning)
        cfg = build_config(
            t.config,
            chain,
            platform=t.platform,
            epoch=t.epoch,
            base_config=t.base_config,
            inline_cache=t.inline_cache,
        )
        warnings.extend(cfg.warnings)
        cblob = config_blob(cfg.data, oci=plan.oci)
        mblob = manifest_blob(
            config=cblob.descriptor,
            layers=descs,
            oci=plan.oci,
            annotations=t.annotations.manifest,
            descriptor_annotations=t.annotations.manifest_descriptor,
            platform=t.platform,
        )
        images.append(
            PlatformImage(
                id=t.id,
                platform=t.platform,
                manifest=mblob,
                config=cblob,
                image_config=cfg,
                layers=tuple(descs),
            )
        )
    if not plan.multi:
        return ImageGraph(
            root=images[0].manifest.descriptor, images=tuple(images), warnings=tuple(warnings)
        )
    idx = index_blob(
        [img.manifest.descriptor for img in images],
        oci=plan.oci,
        annotations=plan.index_annotations,
        descriptor_annotations=plan.index_descriptor_annotations,
    )
    return ImageGraph(
        root=idx.descriptor, images=tuple(images), index=idx, warnings=tuple(warnings)
    )
