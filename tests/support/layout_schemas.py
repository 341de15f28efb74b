"""Schemas for the files of an image archive and a check of every JSON file in one.

The OCI documents (index, manifests, configs; both media-type families) are checked with
:mod:`support.oci_schemas`; ``oci-layout`` (image-spec ``image-layout.md``) and Docker's
``manifest.json`` (the ``docker load`` format) with the schemas here.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import jsonschema

from pallet.oci import mediatypes as mt
from support import oci_schemas

__all__ = [
    "DOCKER_ARCHIVE_MANIFEST_SCHEMA",
    "OCI_LAYOUT_SCHEMA",
    "members",
    "read",
    "validate_json_blobs",
]

OCI_LAYOUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["imageLayoutVersion"],
    "properties": {"imageLayoutVersion": {"type": "string", "enum": ["1.0.0"]}},
}
DOCKER_ARCHIVE_MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["Config", "RepoTags", "Layers"],
        "additionalProperties": False,
        "properties": {
            "Config": {"type": "string", "pattern": r"^blobs/sha256/[a-f0-9]{64}$"},
            "RepoTags": {
                "oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]
            },
            "Layers": {
                "type": "array",
                "items": {"type": "string", "pattern": r"^blobs/sha256/[a-f0-9]{64}$"},
            },
        },
    },
}


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def validate_json_blobs(data: bytes) -> int:
    """Every JSON file of the archive against its schema; returns how many were checked."""
    n = 0
    oci_schemas.validate("oci-index", json.loads(read(data, "index.json")))
    jsonschema.validate(json.loads(read(data, "oci-layout")), OCI_LAYOUT_SCHEMA)
    n += 2
    names = {m.name for m in members(data)}
    if "manifest.json" in names:
        jsonschema.validate(json.loads(read(data, "manifest.json")), DOCKER_ARCHIVE_MANIFEST_SCHEMA)
        n += 1
    kinds = {
        mt.OCI_MANIFEST: "oci-manifest",
        mt.OCI_INDEX: "oci-index",
        mt.OCI_CONFIG: "oci-config",
        mt.DOCKER_MANIFEST: "docker-manifest",
        mt.DOCKER_MANIFEST_LIST: "docker-manifest-list",
        mt.DOCKER_CONFIG: "docker-config",
    }
    stack = list(json.loads(read(data, "index.json"))["manifests"])
    seen = set()
    while stack:
        d = stack.pop()
        if d["digest"] in seen or d["mediaType"] not in kinds:
            continue
        seen.add(d["digest"])
        doc = json.loads(read(data, "blobs/sha256/" + d["digest"][7:]))
        oci_schemas.validate(kinds[d["mediaType"]], doc)
        n += 1
        stack.extend(doc.get("manifests", []))
        if kinds[d["mediaType"]].endswith("-manifest"):
            stack.append(doc["config"])
    return n
