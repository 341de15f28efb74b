"""The image config and its history, as BuildKit's image writer builds them (spec §2.4, §5.2).

Theory of operation
-------------------
The frontend hands over a config (metadata ``containerimage.config[/<platform>]``) that knows
nothing about the layers the exporter is about to produce. :func:`build_config` turns it into the
config blob of one manifest, in BuildKit's order, each step also usable on its own:

1. :func:`default_config` when the frontend gave none (or an empty one): ``architecture``/``os``
   (+ ``os.version``, ``os.features``, ``variant``) of the platform, ``config.WorkingDir = "/"``,
   ``config.Env = ["PATH=<DEFAULT_PATH>"]`` (no ``Env`` on Windows), ``rootfs.type = "layers"``;
   no ``created``, no ``history``.
2. :func:`parse_history`: ``history`` decoded the way Go decodes ``[]ocispec.History`` (field names
   match case-insensitively; only ``created``, ``created_by``, ``author``, ``comment``,
   ``empty_layer`` survive).
3. :func:`normalize_history` against the layers (today's rule: every layer is kept, empty ones
   included; BuildKit >= v0.10 no longer drops the well-known empty gzip layer):

   * more non-empty entries than layers: warning ``invalid image config with unaccounted
     layers`` and every entry past the L-th non-empty one becomes ``empty_layer: true``;
   * fewer: one entry per missing layer, from that layer's metadata: ``created`` = its creation
     time, ``created_by`` = its description (``created by buildkit`` if it has none),
     ``comment`` = ``buildkit.exporter.image.v0``;
   * a non-empty entry without ``created`` takes its layer's creation time;
   * remaining gaps are filled: first the first timestamp after the first gap (else the last
     timestamp) is found, then each gap takes the current fill value and every timestamp after a
     gap becomes the new fill value.
4. :func:`clamp_history` with a ``SOURCE_DATE_EPOCH``: an entry with no ``created``, or one later
   than the epoch, gets the epoch, except the leading entries that are identical to the base
   image's history (metadata ``containerimage.base.config``).
5. :func:`patch_config`: the config is validated like Go's ``json.Unmarshal`` into
   ``ocispec.Image`` and then patched as a map of *raw* top-level values, so unknown fields are
   kept verbatim (only compacted): ``rootfs`` = ``{"type":"layers","diff_ids":[...]}``
   (``null`` with no layers), ``history`` = the normalised history (``null`` if none), an existing
   ``created`` later than the epoch is clamped, an absent ``created`` becomes the last history
   time (or ``null``), inline cache goes to ``moby.buildkit.cache.v0`` as a base64 string.

Decoding follows Go's ``encoding/json`` (last member wins, field names match
case-insensitively, Go's error texts): :mod:`pallet._gojson`, given the Go types below.

Encoding (byte-exact with Go): compact, top-level keys sorted, nested raw values as written but
compacted and HTML-escaped (see :mod:`pallet._gojson`); history entries in the key order
``created, created_by, author, comment, empty_layer`` with empty values left out; times in
RFC 3339 with nanoseconds, trailing zeros trimmed, ``Z`` for UTC and ``±hh:mm`` otherwise
(:class:`pallet._gotime.Timestamp` keeps the nanoseconds and the offset a time was written with,
as Go's ``time.Time`` does).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import _gojson
from .._gojson import BOOL, EMPTY_STRUCT, STRING, TIME, GoType, map_of, slice_of, struct
from .._gotime import Timestamp
from ..errors import InvalidArgument
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest, canonical
from ._platforms import format_all, go_repr, normalize

__all__ = [
    "DEFAULT_DESCRIPTION",
    "DEFAULT_PATH",
    "HISTORY_COMMENT",
    "INLINE_CACHE_KEY",
    "History",
    "ImageConfig",
    "Layer",
    "PlatformEntry",
    "build_config",
    "clamp_history",
    "default_config",
    "normalize_history",
    "parse_history",
    "parse_platforms",
    "patch_config",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.exporter.image.v0"
DEFAULT_DESCRIPTION = "created by buildkit"
INLINE_CACHE_KEY = "moby.buildkit.cache.v0"
UNACCOUNTED_LAYERS = "invalid image config with unaccounted layers"

_META_PLATFORMS = "refs.platforms"
_META_CONFIG = "containerimage.config"


# --------------------------------------------------------------------------------------------
# the Go types BuildKit decodes into (for Go's error texts; see pallet._gojson.unmarshal)

_DIGESTS = slice_of(GoType("digest.Digest", "string"))
_STRINGS = slice_of(STRING)
_HISTORY = struct(
    "v1.History",
    {
        "created": TIME,
        "created_by": STRING,
        "author": STRING,
        "comment": STRING,
        "empty_layer": BOOL,
    },
)
_IMAGE_CONFIG = struct(
    "v1.ImageConfig",
    {
        "User": STRING,
        "ExposedPorts": map_of(EMPTY_STRUCT),
        "Env": _STRINGS,
        "Entrypoint": _STRINGS,
        "Cmd": _STRINGS,
        "Volumes": map_of(EMPTY_STRUCT),
        "WorkingDir": STRING,
        "Labels": map_of(STRING),
        "StopSignal": STRING,
        "ArgsEscaped": BOOL,
    },
)
_IMAGE = struct(
    "v1.Image",
    {
        "created": TIME,
        "author": STRING,
        "architecture": STRING,
        "os": STRING,
        "os.version": STRING,
        "os.features": _STRINGS,
        "variant": STRING,
        "config": _IMAGE_CONFIG,
        "rootfs": struct("v1.RootFS", {"type": STRING, "diff_ids": _DIGESTS}),
        "history": slice_of(_HISTORY),
    },
)
_HISTORY_HOLDER = struct("struct { History []v1.History }", {"History": slice_of(_HISTORY)})
_PLATFORM = struct(
    "v1.Platform",
    {
        "architecture": STRING,
        "os": STRING,
        "os.version": STRING,
        "os.features": _STRINGS,
        "variant": STRING,
    },
)
_PLATFORMS = struct(
    "exptypes.Platforms",
    {
        "Platforms": slice_of(
            struct("exptypes.Platform", {"ID": STRING, "Platform": _PLATFORM}),
        )
    },
)


# --------------------------------------------------------------------------------------------
# value types


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """One ``history`` entry (``ocispec.History``)."""

    created: Timestamp | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created is not None:
            out["created"] = self.created.rfc3339()
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def _from_obj(cls, obj: Any) -> History:
        if obj is None:
            return cls()
        created: Timestamp | None = None
        values: dict[str, Any] = {}
        fields = ("created", "created_by", "author", "comment", "empty_layer")
        for k, v in obj:
            name = next((f for f in fields if k == f or _gojson.fold(k) == f), None)
            if name == "created":
                created = None if v is None else Timestamp.parse(v)
            elif name is not None and v is not None:
                values[name] = v
        return cls(created=created, **values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One layer of a platform's image, bottom first, as the export wiring computed it.

    ``descriptor`` is the blob as stored (any media-type family; its annotations may hold the
    internal keys that :func:`~pallet.exporter.manifest.layer_descriptor` strips). ``diff_id`` is
    the digest of the uncompressed tar. ``created_at`` and ``description`` are the snapshot's
    metadata, used for history entries the frontend did not provide (BuildKit's ``refMetadata``:
    e.g. ``mount / from exec sh -c make``).
    """

    descriptor: Descriptor
    diff_id: Digest
    created_at: Timestamp | None = None
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageConfig:
    """A finished config blob plus what went into it."""

    data: bytes
    diff_ids: tuple[Digest, ...]
    history: tuple[History, ...] | None
    warnings: tuple[str, ...] = ()

    @property
    def digest(self) -> Digest:
        return canonical(self.data)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformEntry:
    """One entry of ``refs.platforms``: the platform id (key of ``Source.refs``) and platform."""

    id: str
    platform: Platform


# --------------------------------------------------------------------------------------------
# steps


def default_config(platform: Platform) -> bytes:
    """The config used when the frontend gives none (spec §2.4 step 1, §5.2)."""
    p = normalize(platform)
    img = p.to_json()  # the image's platform fields, as in a descriptor
    cfg: dict[str, Any] = {}
    if p.os != "windows":
        cfg["Env"] = ["PATH=" + DEFAULT_PATH]
    cfg["WorkingDir"] = "/"
    img["config"] = cfg
    img["rootfs"] = {"type": "layers", "diff_ids": None}
    return _gojson.marshal(img)


def parse_history(config: bytes) -> list[History] | None:
    """The config's ``history`` (``None`` when absent or ``null``; ``[]`` stays ``[]``).

    Raises:
        InvalidArgument: ``failed to unmarshal history from config: <reason>``.
    """
    prefix = "failed to unmarshal history from config"
    try:
        doc = _gojson.unmarshal(config, _HISTORY_HOLDER)
    except ValueError as exc:
        raise InvalidArgument(f"{prefix}: {exc}") from exc
    if doc is None:
        return None
    hist: list[History] | None = None
    for v in _gojson.members(doc, "History"):
        # Go: a JSON null resets the slice to nil; an array replaces it
        hist = None if v is None else [History._from_obj(o) for o in v]
    return hist


def normalize_history(
    history: Sequence[History] | None, layers: Sequence[Layer]
) -> tuple[list[History] | None, tuple[str, ...]]:
    """Match history entries to layers (spec §2.4 step 3, today's rule: no layer is dropped).

    Returns the new history (``None`` stays ``None`` when there is nothing to add) and the
    warnings to log.
    """
    warnings: list[str] = []
    hist = None if history is None else list(history)
    n_layers = len(layers)
    n_hist = sum(1 for h in hist or () if not h.empty_layer)
    if hist is not None and n_hist > n_layers:
        warnings.append(UNACCOUNTED_LAYERS)
        out: list[History] = []
        seen = 0
        for h in hist:
            if seen >= n_layers:
                h = replace(h, empty_layer=True)
            if not h.empty_layer:
                seen += 1
            out.append(h)
        hist = out
    if n_layers > n_hist:
        hist = list(hist or [])
        for layer in layers[n_hist:]:
            hist.append(
                History(
                    created=layer.created_at,
                    created_by=layer.description or DEFAULT_DESCRIPTION,
                    comment=HISTORY_COMMENT,
                )
            )
    if not hist:
        return hist, tuple(warnings)

    idx = 0
    for i, h in enumerate(hist):
        if not h.empty_layer:
            if h.created is None:
                hist[i] = h = replace(h, created=layers[idx].created_at)
            idx += 1

    # the first time after the first gap, else the last time (BuildKit: "the history item for a
    # first metadata command would be the creation time of a base image layer" otherwise)
    fill: Timestamp | None = None
    gap = False
    for h in hist:
        if h.created is not None:
            fill = h.created
            if gap:
                break
        else:
            gap = True
    gap = False
    for i, h in enumerate(hist):
        if h.created is not None:
            if gap:
                fill = h.created
        else:
            gap = True
            hist[i] = replace(h, created=fill)
    return hist, tuple(warnings)


def clamp_history(
    history: Sequence[History] | None,
    epoch: Timestamp | None,
    base_history: Sequence[History] | None = None,
) -> list[History] | None:
    """Apply SOURCE_DATE_EPOCH to history times (spec §5.2).

    Entries identical to the base image's history, as a leading run, are kept as they are;
    after the first difference every entry without ``created`` or later than ``epoch`` gets
    ``epoch``.
    """
    if history is None:
        return None
    hist = list(history)
    if epoch is None:
        return hist
    diverged = False
    base = list(base_history or ())
    for i, h in enumerate(hist):
        if not diverged and i < len(base) and h == base[i]:
            continue
        diverged = True
        if h.created is None or h.created.after(epoch):
            hist[i] = replace(h, created=epoch)
    return hist


def _history_json(history: Sequence[History] | None) -> str:
    if history is None:
        return "null"
    return _gojson.marshal([h.to_json() for h in history]).decode()


def patch_config(
    config: bytes,
    *,
    diff_ids: Sequence[Digest],
    history: Sequence[History] | None,
    epoch: Timestamp | None = None,
    inline_cache: bytes | None = None,
) -> bytes:
    """Validate ``config`` and patch rootfs, history, created and inline cache into it (§2.4.4).

    Raises:
        InvalidArgument: ``invalid image config for export: <reason>``, ``failed to parse image
            config for patch: <reason>``, ``invalid null image config for export``,
            ``invalid image config for export: missing os`` / ``...: missing architecture``.
    """
    text = _gojson.decode_bytes(config)
    try:
        doc = _gojson.unmarshal(text, _IMAGE)
    except ValueError as exc:
        raise InvalidArgument(f"invalid image config for export: {exc}") from exc
    try:
        raw = _gojson.raw_members(text)
    except ValueError as exc:  # pragma: no cover - unmarshal already proved it is an object
        raise InvalidArgument(f"failed to parse image config for patch: {exc}") from exc
    if doc is None:
        raise InvalidArgument("invalid null image config for export")
    if not _gojson.field(doc, "os", ""):
        raise InvalidArgument("invalid image config for export: missing os")
    if not _gojson.field(doc, "architecture", ""):
        raise InvalidArgument("invalid image config for export: missing architecture")

    raw["rootfs"] = _gojson.marshal(
        {"type": "layers", "diff_ids": [str(d) for d in diff_ids] or None}
    ).decode()
    raw["history"] = _history_json(history)
    if "created" in raw and epoch is not None:
        created_raw = _gojson.loads(raw["created"])
        if created_raw is not None and Timestamp.parse(created_raw).after(epoch):
            raw["created"] = json.dumps(epoch.rfc3339())
    if "created" not in raw:
        last: Timestamp | None = None
        for h in history or ():
            if h.created is not None:
                last = h.created
        raw["created"] = "null" if last is None else json.dumps(last.rfc3339())
    if inline_cache:
        raw[INLINE_CACHE_KEY] = json.dumps(base64.b64encode(inline_cache).decode())
    body = ",".join(f"{_gojson.go_string(k)}:{_gojson.compact(raw[k])}" for k in sorted(raw))
    return ("{" + body + "}").encode("utf-8", "surrogateescape")


def build_config(
    config: bytes,
    layers: Sequence[Layer],
    *,
    platform: Platform,
    epoch: Timestamp | None = None,
    base_config: bytes | None = None,
    inline_cache: bytes | None = None,
) -> ImageConfig:
    """The config blob for one manifest: steps 1-5 of the module docstring, in BuildKit's order.

    ``config`` is the frontend's config (``b""`` for none). ``platform`` is used only for the
    default config. ``base_config`` is the base image's config, whose history prefix the epoch
    leaves alone.

    Raises:
        InvalidArgument: the texts of :func:`parse_history` and :func:`patch_config`.
    """
    if not config:
        config = default_config(platform)
    history = parse_history(config)
    hist, warnings = normalize_history(history, layers)
    base_hist: list[History] | None = None
    if epoch is not None and base_config:
        try:
            base_hist = parse_history(base_config)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid base image config: {exc}") from exc
    hist = clamp_history(hist, epoch, base_hist)
    diff_ids = tuple(layer.diff_id for layer in layers)
    data = patch_config(
        config, diff_ids=diff_ids, history=hist, epoch=epoch, inline_cache=inline_cache
    )
    return ImageConfig(
        data=data,
        diff_ids=diff_ids,
        history=None if hist is None else tuple(hist),
        warnings=warnings,
    )


def parse_platforms(
    metadata: Mapping[str, bytes], *, default_platform: Platform
) -> tuple[PlatformEntry, ...]:
    """The platforms of an export, as BuildKit's ``exptypes.ParsePlatforms`` (spec §5.1-5.2).

    With ``refs.platforms`` in the metadata its entries are validated and normalised. Without,
    there is one platform: the config's ``os``/``architecture`` (+ variant, os.version,
    os.features) when ``containerimage.config`` has them, else ``default_platform``; its id is
    the normalised ``FormatAll`` string (``linux/arm/v7``).

    Raises:
        InvalidArgument: ``failed to parse platforms passed to exporter: <reason>``,
            ``invalid empty platforms index for exporter``, ``invalid empty platform key for
            exporter``, ``invalid platform value <v> for exporter``, ``invalid image config:
            os and architecture must be specified together``, or Go's JSON error for a config
            that does not decode.
    """
    raw = metadata.get(_META_PLATFORMS)
    if raw is not None:
        entries: list[PlatformEntry] = []
        if len(raw) > 0:
            prefix = "failed to parse platforms passed to exporter"
            try:
                doc = _gojson.unmarshal(raw, _PLATFORMS)
            except ValueError as exc:
                raise InvalidArgument(f"{prefix}: {exc}") from exc
            items = _gojson.field(doc, "Platforms", [], null_resets=True) if doc is not None else []
            for item in items:
                pid = _gojson.field(item, "ID", "") if item is not None else ""
                pobj = _gojson.field(item, "Platform", None) if item is not None else None
                entries.append(PlatformEntry(id=pid, platform=_platform_from(pobj)))
        if not entries:
            raise InvalidArgument("invalid empty platforms index for exporter")
        out = []
        for e in entries:
            if not e.id:
                raise InvalidArgument("invalid empty platform key for exporter")
            if not e.platform.os or not e.platform.architecture:
                raise InvalidArgument(f"invalid platform value {go_repr(e.platform)} for exporter")
            out.append(replace(e, platform=normalize(e.platform)))
        return tuple(out)

    p = default_platform
    cfg = metadata.get(_META_CONFIG)
    if cfg:  # an empty config means "none" here as everywhere else
        try:
            doc = _gojson.unmarshal(cfg, _IMAGE)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        if doc is not None:
            img = _platform_from(doc)
            if img.os and img.architecture:
                p = img
            elif img.os or img.architecture:
                raise InvalidArgument(
                    "invalid image config: os and architecture must be specified together"
                )
    p = normalize(p)
    return (PlatformEntry(id=format_all(p), platform=p),)


def _platform_from(obj: Any) -> Platform:
    if obj is None:
        return Platform(os="", architecture="")
    feats = _gojson.field(obj, "os.features", None, null_resets=True)
    return Platform(
        os=_gojson.field(obj, "os", ""),
        architecture=_gojson.field(obj, "architecture", ""),
        variant=_gojson.field(obj, "variant", ""),
        os_version=_gojson.field(obj, "os.version", ""),
        os_features=tuple(f or "" for f in feats) if feats else (),
    )
