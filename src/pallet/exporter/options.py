"""Exporter options: ``attrs`` (``type=image,name=...,push=true``) -> :class:`ImageExportOptions`.

All attr validation lives here and does no I/O (BuildKit's ``Resolve`` plus ``ImageCommitOpts
.Load``, spec §1 and §5.1). Keys are matched exactly; every key that is not an option, including
``containerimage.config`` and ``image.name``, becomes metadata that overrides the frontend's.

======================================  ===================  ===================================
key                                     value                default
======================================  ===================  ===================================
``name``                                names, ``,``-sep.;   ``""``
                                        ``*`` = metadata
                                        ``image.name``
``push`` ``push-by-digest``             bool                 false
``registry.insecure`` ``unpack``        bool                 false
``store``                               bool                 true
``dangling-name-prefix``                string               ``""``
``danging-name-empty-only`` (sic)       bool                 false
``name-canonical``                      bool                 false
``oci-mediatypes``                      bool                 true (BuildKit >= v0.31)
``oci-artifact``                        bool                 = oci-mediatypes
``compression``                         uncompressed, gzip,  gzip
                                        zstd (estargz is
                                        refused)
``compression-level``                   int (gzip 0-9,       the compressor's
                                        zstd 0-22)
``force-compression``                   bool                 false
``attestation-inline``                  bool                 true
``prefer-nondist-layers``               bool                 false
``source-date-epoch``                   int seconds or       unset (then metadata
                                        ``""`` (= disable)   ``source.date.epoch``)
``rewrite-timestamp``                   bool                 false
``unsafe-internal-store-allow-          bool                 false
incomplete``
``annotation…``                         see annotations.py
======================================  ===================  ===================================

Booleans: ``""`` means true; anything else must be one of Go's ``strconv.ParseBool`` spellings
(``1 t T TRUE true True 0 f F FALSE false False``). Error texts are BuildKit's, with Go's
wrapped cause, e.g. ``non-bool value specified for push: strconv.ParseBool: parsing "yes":
invalid syntax``.

When several attrs are wrong, the first error in this order is raised: annotation keys (in attr
order), ``compression``, ``force-compression``, ``compression-level``, ``source-date-epoch``, the
other keys in attr order, then the conflicts (``compression=estargz`` or ``oci-artifact=true`` or
annotations that need OCI types, each with an explicit ``oci-mediatypes=false``), then the
refusal of ``estargz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._gojson import go_quote
from .._gotime import Timestamp
from ..errors import InvalidArgument
from ..oci.descriptor import Platform
from ..oci.digest import Digest
from .annotations import ANNOTATIONS_NEED_OCI, AnnotationGroup

__all__ = [
    "COMPRESSION_LEVELS",
    "REWRITE_TIMESTAMP_CONFLICTS_WITH_UNPACK",
    "REWRITE_TIMESTAMP_WITHOUT_EPOCH",
    "CompressionName",
    "ImageExportOptions",
    "go_parse_bool",
    "go_parse_int",
    "parse_output",
    "resolve",
]

CompressionName = Literal["uncompressed", "gzip", "zstd"]
#: accepted levels per compression (BuildKit passes them to the compressor: gzip/estargz 0-9,
#: zstd 0-22); ``uncompressed`` ignores the level.
COMPRESSION_LEVELS: Mapping[str, range] = {"gzip": range(0, 10), "zstd": range(0, 23)}

#: BuildKit's export-time error when an image with rewritten layers would be unpacked (§4.2).
REWRITE_TIMESTAMP_CONFLICTS_WITH_UNPACK = (
    'exporter option "rewrite-timestamp" conflicts with "unpack"'
)
#: BuildKit's warning (not an error) when ``rewrite-timestamp`` has no epoch to rewrite to.
REWRITE_TIMESTAMP_WITHOUT_EPOCH = (
    "rewrite-timestamp is specified, but no source-date-epoch was found"
)

META_EPOCH = "source.date.epoch"
META_IMAGE_NAME = "image.name"

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT64 = range(-(2**63), 2**63)


def go_parse_bool(v: str) -> bool:
    """Go's ``strconv.ParseBool``.

    Raises:
        InvalidArgument: ``strconv.ParseBool: parsing "<v>": invalid syntax``.
    """
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidArgument(f"strconv.ParseBool: parsing {go_quote(v)}: invalid syntax")


def go_parse_int(v: str) -> int:
    """Go's ``strconv.ParseInt(v, 10, 64)``: optional sign, ASCII digits, int64 range.

    Raises:
        InvalidArgument: ``strconv.ParseInt: parsing "<v>": invalid syntax`` or ``...: value out
            of range``.
    """
    digits = v[1:] if v[:1] in ("+", "-") else v
    if not digits or not all("0" <= c <= "9" for c in digits):
        raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(v)}: invalid syntax")
    n = int(v)
    if n not in _INT64:
        raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(v)}: value out of range")
    return n


def _bool_empty_true(key: str, v: str) -> bool:
    if v == "":
        return True
    try:
        return go_parse_bool(v)
    except InvalidArgument as exc:
        raise InvalidArgument(f"non-bool value specified for {key}: {exc}") from None


def _parse_epoch(key: str, v: str) -> int | None:
    """BuildKit ``epoch.parseTime``: ``""`` is no epoch; the cause appears twice, as in Go."""
    if v == "":
        return None
    try:
        return go_parse_int(v)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid {key}: {exc}: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageExportOptions:
    """The resolved options of one image export; build it with :func:`resolve`."""

    name: str = ""
    push: bool = False
    push_by_digest: bool = False
    insecure: bool = False
    unpack: bool = False
    store: bool = True
    dangling_name_prefix: str = ""
    dangling_name_empty_only: bool = False
    name_canonical: bool = False
    oci_mediatypes: bool = True
    oci_artifact: bool = True
    compression: CompressionName = "gzip"
    compression_level: int | None = None
    force_compression: bool = False
    attestation_inline: bool = True
    prefer_nondist_layers: bool = False
    #: seconds; ``None`` with ``source_date_epoch_set`` means explicitly disabled (``""``)
    source_date_epoch: int | None = None
    source_date_epoch_set: bool = False
    rewrite_timestamp: bool = False
    unsafe_allow_incomplete: bool = False
    annotations: AnnotationGroup = field(default_factory=AnnotationGroup)
    #: every attr that is not an option, as metadata bytes
    metadata: Mapping[str, bytes] = field(default_factory=dict)

    # -- export-time helpers (pure) ----------------------------------------------------------

    def merged_metadata(self, frontend: Mapping[str, bytes]) -> dict[str, bytes]:
        """The source metadata with the option metadata on top (the options win)."""
        out = dict(frontend)
        out.update(self.metadata)
        return out

    def epoch(
        self, metadata: Mapping[str, bytes], platform_id: str | None = None
    ) -> Timestamp | None:
        """The SOURCE_DATE_EPOCH of an export (or of one platform of it).

        ``source-date-epoch`` wins (``""`` disables any epoch); else metadata
        ``source.date.epoch/<platform_id>``, then ``source.date.epoch``.

        Raises:
            InvalidArgument: ``invalid SOURCE_DATE_EPOCH from frontend: "<v>": ...``.
        """
        if self.source_date_epoch_set:
            if self.source_date_epoch is None:
                return None
            return Timestamp.from_unix(self.source_date_epoch)
        keys = [f"{META_EPOCH}/{platform_id}"] if platform_id else []
        for key in [*keys, META_EPOCH]:
            raw = metadata.get(key)
            if raw is None:
                continue
            text = raw.decode("utf-8", "surrogateescape")
            try:
                secs = _parse_epoch("", text)
            except InvalidArgument as exc:
                raise InvalidArgument(
                    f"invalid SOURCE_DATE_EPOCH from frontend: {go_quote(text)}: {exc}"
                ) from None
            return None if secs is None else Timestamp.from_unix(secs)
        return None

    def image_name(self, metadata: Mapping[str, bytes], root: Digest) -> str:
        """The full name string (response ``image.name``) once the root digest is known.

        ``*`` takes metadata ``image.name`` (and stays ``*`` without it); with
        ``dangling-name-prefix`` the name ``<prefix>@<digest>`` is appended, or used alone when
        there is no name or ``danging-name-empty-only`` is set.
        """
        name = self.name
        if name == "*" and META_IMAGE_NAME in metadata:
            name = metadata[META_IMAGE_NAME].decode("utf-8", "surrogateescape")
        if self.dangling_name_prefix and (not self.dangling_name_empty_only or not name):
            dangling = f"{self.dangling_name_prefix}@{root}"
            name = f"{name},{dangling}" if name else dangling
        return name

    def target_names(self, metadata: Mapping[str, bytes], root: Digest) -> tuple[str, ...]:
        """The names to store and push, in order (Go's ``strings.Split(name, ",")``)."""
        name = self.image_name(metadata, root)
        return tuple(name.split(",")) if name else ()

    def record_names(self, target: str, root: Digest) -> tuple[str, ...]:
        """The image records for one target name: itself, plus ``<name>@<digest>`` with
        ``name-canonical`` (unless the name already has an ``@``)."""
        if self.name_canonical and "@" not in target:
            return (target, f"{target}@{root}")
        return (target,)


_BOOL_FIELDS: Mapping[str, str] = {
    "push": "push",
    "push-by-digest": "push_by_digest",
    "registry.insecure": "insecure",
    "unpack": "unpack",
    "store": "store",
    "danging-name-empty-only": "dangling_name_empty_only",
    "name-canonical": "name_canonical",
    "oci-mediatypes": "oci_mediatypes",
    "oci-artifact": "oci_artifact",
    "attestation-inline": "attestation_inline",
    "prefer-nondist-layers": "prefer_nondist_layers",
    "rewrite-timestamp": "rewrite_timestamp",
    "unsafe-internal-store-allow-incomplete": "unsafe_allow_incomplete",
}
_STR_FIELDS: Mapping[str, str] = {"name": "name", "dangling-name-prefix": "dangling_name_prefix"}
_EARLY_KEYS = ("compression", "force-compression", "compression-level", "source-date-epoch")


def resolve(
    attrs: Mapping[str, str], *, default_platform: Platform | None = None
) -> ImageExportOptions:
    """Parse and validate exporter attrs; no I/O.

    ``default_platform`` only completes one-component annotation platforms (``[arm64]``).

    Raises:
        InvalidArgument: with BuildKit's text for the first invalid attr (see module docstring).
    """
    group, rest = AnnotationGroup.parse(attrs.items(), default_platform=default_platform)
    kw: dict[str, Any] = {}

    compression = attrs.get("compression", "gzip")
    if compression not in ("uncompressed", "gzip", "zstd", "estargz"):
        raise InvalidArgument(f"unsupported compression type {compression}")
    if "force-compression" in attrs:
        v = attrs["force-compression"]
        try:
            kw["force_compression"] = True if v == "" else go_parse_bool(v)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"non-bool value {v} specified for force-compression: {exc}"
            ) from None
    level: int | None = None
    if "compression-level" in attrs:
        v = attrs["compression-level"]
        try:
            level = go_parse_int(v)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"non-integer value {v} specified for compression-level: {exc}"
            ) from None
    if "source-date-epoch" in attrs:
        kw["source_date_epoch"] = _parse_epoch("source-date-epoch", attrs["source-date-epoch"])
        kw["source_date_epoch_set"] = True

    meta: dict[str, bytes] = {}
    given: set[str] = set()
    for k in rest:
        v = attrs[k]
        if k in _EARLY_KEYS:
            continue
        if k in _BOOL_FIELDS:
            kw[_BOOL_FIELDS[k]] = _bool_empty_true(k, v)
            given.add(k)
        elif k in _STR_FIELDS:
            kw[_STR_FIELDS[k]] = v
        else:
            meta[k] = v.encode("utf-8", "surrogateescape")

    oci = bool(kw.get("oci_mediatypes", True))
    if "oci-artifact" not in given:
        kw["oci_artifact"] = oci
    if "oci-mediatypes" in given and not oci:
        # BuildKit checks conflicts only with an explicit oci-mediatypes (ImageCommitOpts.Validate)
        if compression == "estargz":
            raise InvalidArgument(
                'exporter option "compression=estargz" conflicts with "oci-mediatypes=false"'
            )
        if "oci-artifact" in given and kw["oci_artifact"]:
            raise InvalidArgument(
                'exporter option "oci-artifact=true" conflicts with "oci-mediatypes=false"'
            )
        if group.needs_oci():
            raise InvalidArgument(ANNOTATIONS_NEED_OCI)
    if compression == "estargz":
        raise InvalidArgument(
            "unsupported compression type estargz: pallet does not implement estargz "
            "(use gzip or zstd)"
        )
    if level is not None and compression in COMPRESSION_LEVELS:
        allowed = COMPRESSION_LEVELS[compression]
        if level not in allowed:
            raise InvalidArgument(
                f"compression level {level}: {compression} levels are "
                f"{allowed.start}-{allowed.stop - 1}"
            )
    kw["compression"] = compression
    kw["compression_level"] = level
    kw["annotations"] = group
    kw["metadata"] = meta
    return replace(ImageExportOptions(), **kw)


_BARE_QUOTE = 'bare " in non-quoted-field'
_QUOTE = 'extraneous or missing " in quoted-field'


class _GoCSV:
    """Go's ``encoding/csv`` ``Reader`` as buildx uses it for ``-o``: comma-separated, no
    ``LazyQuotes``, no ``TrimLeadingSpace``, no comments.

    It works on bytes because Go's columns are 1-based *byte* offsets; a ``ParseError`` reads
    ``parse error on line L, column C: <why>`` (``record on line S; `` first when the record
    started on an earlier line). Like Go, it folds ``\\r\\n`` into ``\\n``, drops a ``\\r``
    before the end and skips blank lines.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._off = 0
        self._line = 0

    def _read_line(self) -> tuple[bytes, bool]:
        """The next line with its ``\\n``, and whether the input had ended (nothing read)."""
        self._line += 1
        data, off = self._data, self._off
        if off >= len(data):
            return b"", True
        end = data.find(b"\n", off)
        if end < 0:
            line = data[off:].removesuffix(b"\r")
            self._off = len(data)
        else:
            line = data[off : end + 1]
            self._off = end + 1
            if line.endswith(b"\r\n"):
                line = line[:-2] + b"\n"
        return line, False

    @staticmethod
    def _nl(line: bytes) -> int:
        return 1 if line.endswith(b"\n") else 0

    def _error(self, start: int, line: int, col: int, why: str) -> InvalidArgument:
        where = f"record on line {start}; " if start != line else ""
        return InvalidArgument(f"{where}parse error on line {line}, column {col}: {why}")

    def read(self) -> list[bytes] | None:
        """The next record's fields; ``None`` at the end of the input.

        Raises:
            InvalidArgument: Go's ``ParseError`` text for a bare or unbalanced quote.
        """
        while True:
            line, eof = self._read_line()
            if eof:
                return None
            if len(line) != self._nl(line):
                break
        start = self._line
        fields: list[bytes] = []
        pos_line, col = self._line, 1
        while True:
            if not line.startswith(b'"'):
                i = line.find(b",")
                field = line[:i] if i >= 0 else line[: len(line) - self._nl(line)]
                j = field.find(b'"')
                if j >= 0:
                    raise self._error(start, self._line, col + j, _BARE_QUOTE)
                fields.append(field)
                if i < 0:
                    return fields
                line = line[i + 1 :]
                col += i + 1
                continue
            line, col = line[1:], col + 1
            quoted = bytearray()
            while True:
                i = line.find(b'"')
                if i >= 0:
                    quoted += line[:i]
                    line, col = line[i + 1 :], col + i + 1
                    if line.startswith(b'"'):  # "" is one quote
                        quoted += b'"'
                        line, col = line[1:], col + 1
                    elif line.startswith(b","):
                        line, col = line[1:], col + 1
                        fields.append(bytes(quoted))
                        break
                    elif len(line) == self._nl(line):
                        fields.append(bytes(quoted))
                        return fields
                    else:
                        raise self._error(start, self._line, col - 1, _QUOTE)
                elif line:  # the field goes on on the next line
                    quoted += line
                    col += len(line)
                    line, _ = self._read_line()
                    if line:
                        pos_line, col = pos_line + 1, 1
                else:  # the input ended inside the quotes
                    raise self._error(start, pos_line, col, _QUOTE)


def parse_output(spec: str) -> dict[str, str]:
    """One ``-o``/``--output`` value, ``type=image,name=a,push=true``, read as buildx reads it.

    buildx's ``ParseExports`` reads the value with Go's ``encoding/csv`` (so ``"name=a,b"`` is one
    field) and splits each field at its first ``=``; keys are lower-cased and trimmed, values
    kept as they are. Quotes are as strict as Go's: a quote inside an unquoted field or an
    unbalanced one is an error with Go's text and column. Where buildx would silently ignore
    input (a second line) or take a key twice, pallet refuses; ``name`` may repeat and its
    values join with ``,``. ``type`` defaults to ``image``.

    Raises:
        InvalidArgument: ``output '<spec>': <why>``.
    """
    reader = _GoCSV(spec.encode("utf-8", "surrogateescape"))
    try:
        record = reader.read()
        if record is None:
            raise InvalidArgument("no fields")
        if reader.read() is not None:
            raise InvalidArgument("more than one line: give one output per -o")
    except InvalidArgument as exc:
        raise InvalidArgument(f"output {spec!r}: {exc}") from None
    out: dict[str, str] = {}
    for raw in record:
        f = raw.decode("utf-8", "surrogateescape")
        k, sep, v = f.partition("=")
        k = k.lower().strip()
        if not sep:
            raise InvalidArgument(f"output {spec!r}: invalid value {f!r}: want key=value")
        if k in out and k != "name":
            raise InvalidArgument(f"output {spec!r}: duplicate key {k!r}")
        out[k] = f"{out[k]},{v}" if k in out else v
    out.setdefault("type", "image")
    return out
