"""JSON schemas (draft-04) for OCI image-spec v1.1 and Docker schema 2 documents, for tests.

Written from the image-spec text (descriptor, manifest, index, config) and Docker's "Image
Manifest Version 2, Schema 2"; ``validate(kind, doc)`` raises ``jsonschema.ValidationError``.
The OCI manifest schema keeps image-spec's ``"minItems": 1`` on ``layers``.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from pallet.oci import mediatypes as mt

__all__ = ["SCHEMAS", "validate"]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

MEDIA_TYPE: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$",
}
DIGEST: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
}
SHA256: dict[str, Any] = {"type": "string", "pattern": r"^sha256:[a-f0-9]{64}$"}
INT64: dict[str, Any] = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
ANNOTATIONS: dict[str, Any] = {
    "type": "object",
    "patternProperties": {".{1,}": {"type": "string"}},
    "additionalProperties": False,
}
PLATFORM: dict[str, Any] = {
    "type": "object",
    "required": ["architecture", "os"],
    "properties": {
        "architecture": {"type": "string"},
        "os": {"type": "string"},
        "os.version": {"type": "string"},
        "os.features": {"type": "array", "items": {"type": "string"}},
        "variant": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
    },
}
DESCRIPTOR: dict[str, Any] = {
    "type": "object",
    "required": ["mediaType", "size", "digest"],
    "properties": {
        "mediaType": MEDIA_TYPE,
        "size": INT64,
        "digest": DIGEST,
        "urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "data": {"type": "string", "pattern": r"^[A-Za-z0-9+/]*={0,2}$"},
        "artifactType": MEDIA_TYPE,
        "annotations": ANNOTATIONS,
    },
}
INDEX_ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["mediaType", "size", "digest"],
    "properties": {**DESCRIPTOR["properties"], "platform": PLATFORM},
}

OCI_MANIFEST: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["schemaVersion", "config", "layers"],
    "properties": {
        "schemaVersion": {"type": "integer", "minimum": 2, "maximum": 2},
        "mediaType": {"type": "string", "enum": [mt.OCI_MANIFEST]},
        "artifactType": MEDIA_TYPE,
        "config": DESCRIPTOR,
        "subject": DESCRIPTOR,
        "layers": {"type": "array", "minItems": 1, "items": DESCRIPTOR},
        "annotations": ANNOTATIONS,
    },
}
OCI_INDEX: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["schemaVersion", "manifests"],
    "properties": {
        "schemaVersion": {"type": "integer", "minimum": 2, "maximum": 2},
        "mediaType": {"type": "string", "enum": [mt.OCI_INDEX]},
        "artifactType": MEDIA_TYPE,
        "subject": DESCRIPTOR,
        "manifests": {"type": "array", "items": INDEX_ENTRY},
        "annotations": ANNOTATIONS,
    },
}
_STRINGS_OR_NULL = {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
_SET = {"oneOf": [{"type": "object", "additionalProperties": {"type": "object"}}, {"type": "null"}]}
OCI_CONFIG: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["architecture", "os", "rootfs"],
    "properties": {
        "created": {"type": "string", "format": "date-time"},
        "author": {"type": "string"},
        "architecture": {"type": "string"},
        "variant": {"type": "string"},
        "os": {"type": "string"},
        "os.version": {"type": "string"},
        "os.features": {"type": "array", "items": {"type": "string"}},
        "config": {
            "type": "object",
            "properties": {
                "User": {"type": "string"},
                "ExposedPorts": _SET,
                "Env": {"type": "array", "items": {"type": "string"}},
                "Entrypoint": _STRINGS_OR_NULL,
                "Cmd": _STRINGS_OR_NULL,
                "Volumes": _SET,
                "WorkingDir": {"type": "string"},
                "Labels": {
                    "oneOf": [
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        {"type": "null"},
                    ]
                },
                "StopSignal": {"type": "string"},
                "ArgsEscaped": {"type": "boolean"},
            },
        },
        "rootfs": {
            "type": "object",
            "required": ["diff_ids", "type"],
            "properties": {
                "diff_ids": {"type": "array", "items": DIGEST},
                "type": {"type": "string", "enum": ["layers"]},
            },
        },
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "created": {"type": "string", "format": "date-time"},
                    "author": {"type": "string"},
                    "created_by": {"type": "string"},
                    "comment": {"type": "string"},
                    "empty_layer": {"type": "boolean"},
                },
            },
        },
    },
}

_DOCKER_LAYER_TYPES = [
    mt.DOCKER_LAYER,
    mt.DOCKER_LAYER_GZIP,
    mt.DOCKER_LAYER_ZSTD,
    mt.DOCKER_FOREIGN_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
]
DOCKER_MANIFEST: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["schemaVersion", "mediaType", "config", "layers"],
    "properties": {
        "schemaVersion": {"type": "integer", "enum": [2]},
        "mediaType": {"type": "string", "enum": [mt.DOCKER_MANIFEST]},
        "config": {
            **DESCRIPTOR,
            "properties": {
                **DESCRIPTOR["properties"],
                "mediaType": {"type": "string", "enum": [mt.DOCKER_CONFIG]},
                "digest": SHA256,
            },
        },
        "layers": {
            "type": "array",
            "items": {
                **DESCRIPTOR,
                "properties": {
                    **DESCRIPTOR["properties"],
                    "mediaType": {"type": "string", "enum": _DOCKER_LAYER_TYPES},
                    "digest": SHA256,
                },
                "not": {"required": ["annotations"]},
            },
        },
    },
}
DOCKER_MANIFEST_LIST: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["schemaVersion", "mediaType", "manifests"],
    "properties": {
        "schemaVersion": {"type": "integer", "enum": [2]},
        "mediaType": {"type": "string", "enum": [mt.DOCKER_MANIFEST_LIST]},
        "manifests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["mediaType", "size", "digest", "platform"],
                "properties": {
                    **DESCRIPTOR["properties"],
                    "mediaType": {"type": "string", "enum": [mt.DOCKER_MANIFEST]},
                    "digest": SHA256,
                    "platform": PLATFORM,
                },
            },
        },
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "oci-manifest": OCI_MANIFEST,
    "oci-index": OCI_INDEX,
    "oci-config": OCI_CONFIG,
    "docker-manifest": DOCKER_MANIFEST,
    "docker-manifest-list": DOCKER_MANIFEST_LIST,
    # Docker's image config is the OCI config plus Docker-only fields
    "docker-config": OCI_CONFIG,
}

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_RFC3339.match(value))


@_FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value))


def validate(kind: str, doc: Any) -> None:
    """Validate ``doc`` against schema ``kind`` (a key of :data:`SCHEMAS`), formats included."""
    jsonschema.Draft4Validator(SCHEMAS[kind], format_checker=_FORMATS).validate(doc)
