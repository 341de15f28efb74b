"""Manifest and index blobs: JSON bytes, descriptors and garbage-collection labels.

Encoding (BuildKit HEAD, spec §5.2): Go's ``json.MarshalIndent`` with two spaces, no trailing
newline, Go string escaping (:mod:`pallet._gojson`); struct key order

* manifest: ``schemaVersion, mediaType, config, layers, annotations`` (``layers`` is ``null``
  when there are none, as Go writes a nil slice; ``annotations`` only when non-empty);
* index: ``schemaVersion, mediaType, manifests, annotations``;
* descriptor: ``mediaType, digest, size, urls, annotations, platform, artifactType``; platform:
  ``architecture, os, os.version, os.features, variant``; annotation keys sorted.

Media types: OCI (``application/vnd.oci.image.manifest.v1+json``, ``...index.v1+json``,
``...config.v1+json``) or Docker schema 2 (``...distribution.manifest.v2+json``,
``...manifest.list.v2+json``, ``...container.image.v1+json``). Layer media types are converted
to the chosen family (:func:`convert_layer_media_type`); in OCI manifests layer descriptors keep
their annotations except the internal ``containerd.io/uncompressed``, ``buildkit/createdat`` and
``containerd.io/distribution.source.*``; Docker manifests carry no layer annotations.

Garbage collection: a manifest blob is labelled ``containerd.io/gc.ref.content.config`` = config
digest and ``containerd.io/gc.ref.content.l.<i>`` = layer ``i``; an index blob
``containerd.io/gc.ref.content.m.<i>`` = manifest ``i``. An image record pointing at the root
therefore keeps the whole graph alive; config blobs have no labels (unpack later adds the
snapshot label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import _gojson
from ..labels import DISTRIBUTION_SOURCE_PREFIX, GC_REF_CONTENT, UNCOMPRESSED
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest, canonical

__all__ = [
    "DOCKER_FOREIGN_LAYER_TAR",
    "INTERNAL_LAYER_ANNOTATIONS",
    "Blob",
    "config_blob",
    "config_media_type",
    "convert_layer_media_type",
    "encode_index",
    "encode_manifest",
    "index_blob",
    "index_gc_labels",
    "index_media_type",
    "layer_descriptor",
    "manifest_blob",
    "manifest_gc_labels",
    "manifest_media_type",
    "to_distributable",
]

DOCKER_FOREIGN_LAYER_TAR = "application/vnd.docker.image.rootfs.foreign.diff.tar"
INTERNAL_LAYER_ANNOTATIONS = frozenset({UNCOMPRESSED, "buildkit/createdat"})
_INDENT = "  "

_TO_OCI = {
    mt.DOCKER_LAYER: mt.OCI_LAYER,
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_ZSTD: mt.OCI_LAYER_ZSTD,
    DOCKER_FOREIGN_LAYER_TAR: mt.OCI_ND_LAYER,
    mt.DOCKER_FOREIGN_LAYER: mt.OCI_ND_LAYER_GZIP,
}
_TO_DOCKER = {
    mt.OCI_LAYER: mt.DOCKER_LAYER,
    mt.OCI_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.OCI_LAYER_ZSTD: mt.DOCKER_LAYER_ZSTD,
    mt.OCI_ND_LAYER: DOCKER_FOREIGN_LAYER_TAR,
    mt.OCI_ND_LAYER_GZIP: mt.DOCKER_FOREIGN_LAYER,
}
_DISTRIBUTABLE = {
    mt.OCI_ND_LAYER: mt.OCI_LAYER,
    mt.OCI_ND_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.OCI_ND_LAYER_ZSTD: mt.OCI_LAYER_ZSTD,
    DOCKER_FOREIGN_LAYER_TAR: mt.DOCKER_LAYER,
    mt.DOCKER_FOREIGN_LAYER: mt.DOCKER_LAYER_GZIP,
}


def manifest_media_type(oci: bool) -> str:
    return mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST


def index_media_type(oci: bool) -> str:
    return mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST


def config_media_type(oci: bool) -> str:
    return mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG


def convert_layer_media_type(media_type: str, *, oci: bool) -> tuple[str, str | None]:
    """The layer media type in the OCI or Docker family, plus a warning when it has none.

    Types of the target family and unknown types pass unchanged; BuildKit warns (``unhandled
    conversion for mediatype "<t>"``) only when an unknown type goes into a Docker manifest.
    """
    if oci:
        return _TO_OCI.get(media_type, media_type), None
    if media_type in _TO_DOCKER:
        return _TO_DOCKER[media_type], None
    if media_type in _TO_OCI:  # already a Docker type
        return media_type, None
    return media_type, f"unhandled conversion for mediatype {_gojson.go_quote(media_type)}"


def to_distributable(media_type: str) -> str:
    """The distributable twin of a non-distributable ("foreign") layer type (else unchanged)."""
    return _DISTRIBUTABLE.get(media_type, media_type)


def layer_descriptor(
    desc: Descriptor, *, oci: bool, prefer_nondist: bool = False
) -> tuple[Descriptor, str | None]:
    """A layer blob's descriptor as it goes into a manifest (plus a conversion warning).

    Non-distributable types become distributable unless ``prefer_nondist``; the media type moves
    to the manifest's family; annotations are filtered (OCI) or dropped (Docker).
    """
    media_type = desc.media_type if prefer_nondist else to_distributable(desc.media_type)
    media_type, warning = convert_layer_media_type(media_type, oci=oci)
    if oci:
        ann = {
            k: v
            for k, v in desc.annotations.items()
            if k not in INTERNAL_LAYER_ANNOTATIONS and not k.startswith(DISTRIBUTION_SOURCE_PREFIX)
        }
    else:
        ann = {}
    return replace(desc, media_type=media_type, annotations=ann), warning


def _descriptor_json(d: Descriptor) -> dict[str, Any]:
    return d.to_json()


def encode_manifest(
    *,
    config: Descriptor,
    layers: Sequence[Descriptor],
    oci: bool,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The manifest JSON bytes (layers already converted by :func:`layer_descriptor`)."""
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_media_type(oci),
        "config": {
            "mediaType": config.media_type,
            "digest": str(config.digest),
            "size": config.size,
        },
        "layers": [_descriptor_json(d) for d in layers] or None,
    }
    if annotations:
        obj["annotations"] = dict(sorted(annotations.items()))
    return _gojson.marshal_indent(obj, _INDENT)


def encode_index(
    manifests: Sequence[Descriptor], *, oci: bool, annotations: Mapping[str, str] | None = None
) -> bytes:
    """The index (or Docker manifest list) JSON bytes; ``manifests`` carry their platforms."""
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": index_media_type(oci),
        "manifests": [_descriptor_json(d) for d in manifests] or None,
    }
    if annotations:
        obj["annotations"] = dict(sorted(annotations.items()))
    return _gojson.marshal_indent(obj, _INDENT)


def manifest_gc_labels(config: Digest, layers: Sequence[Digest]) -> dict[str, str]:
    """``gc.ref.content.config`` and ``gc.ref.content.l.<i>`` labels of a manifest blob."""
    out = {f"{GC_REF_CONTENT}.config": str(config)}
    for i, d in enumerate(layers):
        out[f"{GC_REF_CONTENT}.l.{i}"] = str(d)
    return out


def index_gc_labels(manifests: Sequence[Digest]) -> dict[str, str]:
    """``gc.ref.content.m.<i>`` labels of an index blob."""
    return {f"{GC_REF_CONTENT}.m.{i}": str(d) for i, d in enumerate(manifests)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    """A blob to write to the content store: bytes, descriptor, labels and progress status.

    ``descriptor`` is the one that points at the blob from its parent (or as the root): for a
    manifest it carries the platform and the manifest-descriptor annotations.
    """

    descriptor: Descriptor
    data: bytes
    labels: Mapping[str, str] = field(default_factory=dict)
    #: BuildKit's progress status id: ``exporting manifest|config|manifest list sha256:…``
    progress: str = ""

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest


def _blob(
    data: bytes,
    media_type: str,
    what: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
) -> Blob:
    d = canonical(data)
    return Blob(
        descriptor=Descriptor(
            media_type=media_type,
            digest=d,
            size=len(data),
            annotations=dict(annotations or {}),
            platform=platform,
        ),
        data=data,
        labels=dict(labels or {}),
        progress=f"exporting {what} {d}",
    )


def config_blob(data: bytes, *, oci: bool) -> Blob:
    """The config blob (no labels)."""
    return _blob(data, config_media_type(oci), "config")


def manifest_blob(
    *,
    config: Descriptor,
    layers: Sequence[Descriptor],
    oci: bool,
    annotations: Mapping[str, str] | None = None,
    descriptor_annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
) -> Blob:
    """A manifest blob with its GC labels; ``layers`` already converted."""
    return _blob(
        encode_manifest(config=config, layers=layers, oci=oci, annotations=annotations),
        manifest_media_type(oci),
        "manifest",
        manifest_gc_labels(config.digest, [layer.digest for layer in layers]),
        descriptor_annotations,
        platform,
    )


def index_blob(
    manifests: Sequence[Descriptor],
    *,
    oci: bool,
    annotations: Mapping[str, str] | None = None,
    descriptor_annotations: Mapping[str, str] | None = None,
) -> Blob:
    """An index (manifest list) blob with its GC labels."""
    return _blob(
        encode_index(manifests, oci=oci, annotations=annotations),
        index_media_type(oci),
        "manifest list",
        index_gc_labels([m.digest for m in manifests]),
        descriptor_annotations,
    )
