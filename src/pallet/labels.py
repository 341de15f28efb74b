"""Label keys with meaning to garbage collection and caching, validation and field-path updates.

Follows containerd: key plus value at most 4096 bytes, an empty value deletes the key, and
updates address ``labels`` (replace the map) or ``labels.<key>`` (one key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import InvalidArgument

__all__ = [
    "DISTRIBUTION_SOURCE_PREFIX",
    "GC_EXPIRE",
    "GC_FLAT",
    "GC_REF_CONTENT",
    "GC_REF_SNAPSHOT_PREFIX",
    "GC_ROOT",
    "LAYER_BLOB",
    "LAYER_DESCRIPTION",
    "LAYER_DEST",
    "LAYER_DIFF_ID",
    "LAYER_EPOCH",
    "LAYER_MEDIA_TYPE",
    "LAYER_SIZE",
    "LAZY",
    "MAX_LABEL_SIZE",
    "UNCOMPRESSED",
    "apply_fieldpaths",
    "validate",
    "validate_all",
]

MAX_LABEL_SIZE = 4096
GC_ROOT = "containerd.io/gc.root"
GC_REF_CONTENT = "containerd.io/gc.ref.content"
GC_REF_SNAPSHOT_PREFIX = "containerd.io/gc.ref.snapshot."
GC_EXPIRE = "containerd.io/gc.expire"
GC_FLAT = "containerd.io/gc.flat"
UNCOMPRESSED = "containerd.io/uncompressed"
DISTRIBUTION_SOURCE_PREFIX = "containerd.io/distribution.source."

# Snapshot labels of pallet (BuildKit keeps these facts in its cache-ref metadata): the layer blob
# that a committed snapshot's diff against its parent became, so that the next export reuses it.
#: blob digest of the snapshot's layer
LAYER_BLOB = "pallet.io/layer.blob"
#: media type of that blob
LAYER_MEDIA_TYPE = "pallet.io/layer.mediatype"
#: size of that blob
LAYER_SIZE = "pallet.io/layer.size"
#: diffID of the layer
LAYER_DIFF_ID = "pallet.io/layer.diffid"
#: the SOURCE_DATE_EPOCH the layer's mtimes were clamped to ("" when not clamped)
LAYER_EPOCH = "pallet.io/layer.epoch"
#: the snapshot's directory is the whole layer, placed at this path (no diff against the parent)
LAYER_DEST = "pallet.io/layer.dest"
#: the history text of the layer (BuildKit's ``created_by`` of a ref)
LAYER_DESCRIPTION = "pallet.io/layer.description"
#: the snapshot has a blob but no directory (a layer of a base image that was not unpacked)
LAZY = "pallet.io/lazy"


def validate(key: str, value: str) -> None:
    """Raise InvalidArgument unless ``key=value`` is a storable label."""
    if not key:
        raise InvalidArgument("label key: must not be empty")
    if any(c in key for c in "\x00\n"):
        raise InvalidArgument(f"label {key!r}: invalid character in key")
    if len(key.encode()) + len(value.encode()) > MAX_LABEL_SIZE:
        raise InvalidArgument(
            f"label {key[:64]!r}: key and value greater than maximum size ({MAX_LABEL_SIZE} bytes)"
        )


def validate_all(labels: Mapping[str, str]) -> dict[str, str]:
    """Validate every label and drop empty values (never stored)."""
    out: dict[str, str] = {}
    for k, v in labels.items():
        validate(k, v)
        if v != "":
            out[k] = v
    return out


def apply_fieldpaths(
    current: Mapping[str, str],
    new: Mapping[str, str],
    fieldpaths: Iterable[str],
    *,
    prefix: str = "labels",
) -> dict[str, str]:
    """Return ``current`` updated from ``new`` by containerd field paths.

    No field paths replaces the whole map. ``labels`` replaces the map; ``labels.<k>`` sets one
    key (an absent or empty value in ``new`` deletes it).

    Raises:
        InvalidArgument: a path that is neither ``labels`` nor ``labels.<key>``.
    """
    paths = list(fieldpaths)
    if not paths:
        return validate_all(new)
    out = dict(current)
    for p in paths:
        if p == prefix:
            out = validate_all(new)
        elif p.startswith(prefix + ".") and len(p) > len(prefix) + 1:
            key = p[len(prefix) + 1 :]
            val = new.get(key, "")
            validate(key, val)
            if val:
                out[key] = val
            else:
                out.pop(key, None)
        else:
            raise InvalidArgument(f"field path {p!r}: cannot update")
    return out
