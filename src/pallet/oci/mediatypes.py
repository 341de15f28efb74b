"""Media-type constants and predicates (OCI image spec and Docker schema 2)."""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LAYER_ZSTD",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_LAYOUT_VERSION",
    "OCI_MANIFEST",
    "OCI_ND_LAYER",
    "OCI_ND_LAYER_GZIP",
    "OCI_ND_LAYER_ZSTD",
    "compression_of",
    "is_config",
    "is_index",
    "is_layer",
    "is_manifest",
]

OCI_LAYOUT_VERSION = "1.0.0"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_ND_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_ND_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

_LAYERS = {
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_ND_LAYER,
    OCI_ND_LAYER_GZIP,
    OCI_ND_LAYER_ZSTD,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_ZSTD,
    DOCKER_FOREIGN_LAYER,
}


def is_index(mt: str) -> bool:
    return mt in (OCI_INDEX, DOCKER_MANIFEST_LIST)


def is_manifest(mt: str) -> bool:
    return mt in (OCI_MANIFEST, DOCKER_MANIFEST)


def is_config(mt: str) -> bool:
    return mt in (OCI_CONFIG, DOCKER_CONFIG)


def is_layer(mt: str) -> bool:
    return mt in _LAYERS or mt.startswith("application/vnd.oci.image.layer.")


def compression_of(mt: str) -> str:
    """``gzip``, ``zstd`` or ``uncompressed`` for a layer media type."""
    if mt.endswith("+gzip") or mt.endswith(".tar.gzip") or mt == DOCKER_FOREIGN_LAYER:
        return "gzip"
    if mt.endswith("+zstd") or mt.endswith(".tar.zstd"):
        return "zstd"
    return "uncompressed"
