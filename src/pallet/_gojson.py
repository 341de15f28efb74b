"""JSON the way Go's ``encoding/json`` writes and reads it, so digests and errors match Go's.

Every blob pallet digests (config, manifest, index, index.json, manifest.json, the exporter's
root descriptor) is encoded here, and only here. Decoding mirrors what Go's ``json.Unmarshal``
accepts, field lookup and error texts included, for the documents BuildKit decodes.

Encoding (spec §2.4, §5.2, §8)
------------------------------
* UTF-8 output; non-ASCII characters are written as they are, never as ``\\u`` escapes.
* HTML-safe escaping inside strings, as Go does by default: ``<`` ``>`` ``&`` become
  ``\\u003c`` ``\\u003e`` ``\\u0026``; U+2028 and U+2029 become ``\\u2028`` ``\\u2029``.
  Control characters use ``\\n \\r \\t \\b \\f`` or ``\\u00XX`` (lowercase hex), like Go >= 1.22.
* Undecodable input bytes (kept through ``surrogateescape`` so that untouched raw values can be
  copied byte for byte) are written as the escape ``\\ufffd`` when a *decoded* string is
  re-encoded, which is what Go does with invalid UTF-8.
* Objects keep the key order they are given in (Go struct field order); maps that Go sorts
  (annotations, labels, the config's top level) are sorted by the caller.
* :func:`marshal` is compact (``json.Marshal``); :func:`marshal_indent` is
  ``json.MarshalIndent(v, "", indent)``: ``", "``/``": "`` separators, empty containers as
  ``[]``/``{}``, no trailing newline.
* :func:`compact` is Go's ``json.Compact`` with HTML escaping, applied to raw values that are
  copied through (a ``json.RawMessage``): insignificant whitespace goes, everything else,
  number spelling and string escapes included, stays as written.

The same inputs therefore always give the same bytes.

Decoding
--------
:func:`loads` keeps objects as :class:`Object` (members in document order, duplicates kept),
because Go's decoder lets the *last* member win and matches field names case-insensitively
(:func:`field`). :func:`check` reports the first error Go would report when decoding a value
into a :class:`GoType` (``json: cannot unmarshal number into Go struct field
ImageConfig.config.Env of type string``), or None. :func:`unmarshal` does both, as
``json.Unmarshal`` would. :func:`raw_members` is ``map[string]json.RawMessage``: the top-level
members as their raw text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

from ._gotime import Timestamp
from .errors import InvalidArgument

__all__ = [
    "BOOL",
    "EMPTY_STRUCT",
    "STRING",
    "TIME",
    "GoType",
    "Object",
    "check",
    "compact",
    "decode_bytes",
    "field",
    "fold",
    "go_quote",
    "go_string",
    "loads",
    "map_of",
    "marshal",
    "marshal_indent",
    "members",
    "raw_members",
    "slice_of",
    "struct",
    "unmarshal",
]

# --------------------------------------------------------------------------------------------
# encoding

_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
# lone surrogates (from surrogateescape'd bytes or from "\udXXX" escapes) cannot be UTF-8
_ESCAPES.update({c: "\\ufffd" for c in range(0xD800, 0xE000)})


def _finish(text: str) -> bytes:
    return text.translate(_ESCAPES).encode("utf-8")


def marshal(value: Any) -> bytes:
    """Compact JSON bytes of ``value`` (dicts in their own order), Go-escaped."""
    return _finish(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def marshal_indent(value: Any, indent: str) -> bytes:
    """``json.MarshalIndent(value, "", indent)``: pretty-printed, Go-escaped, no final newline."""
    if indent.strip(" "):
        raise ValueError("indent must be spaces")
    return _finish(json.dumps(value, ensure_ascii=False, indent=len(indent), allow_nan=False))


def go_string(s: str) -> str:
    """The JSON text of one string, Go-escaped (as ``str``; ``_finish`` is idempotent)."""
    return json.dumps(s, ensure_ascii=False).translate(_ESCAPES)


def compact(raw: str) -> str:
    """Go's ``json.Compact`` with HTML escaping, for a raw JSON value known to be valid."""
    out: list[str] = []
    in_str = False
    esc = False
    start = 0
    for i, c in enumerate(raw):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            elif c in "<>&\u2028\u2029":
                out.append(raw[start:i])
                out.append(_ESCAPES[ord(c)])
                start = i + 1
        elif c == '"':
            in_str = True
        elif c in " \t\r\n":
            out.append(raw[start:i])
            start = i + 1
    out.append(raw[start:])
    return "".join(out)


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (as used in ``strconv`` error messages)."""
    out = ['"']
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    named |= {"\v": "\\v", '"': '\\"', "\\": "\\\\"}
    for c in s:
        o = ord(c)
        if c in named:
            out.append(named[c])
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte kept by surrogateescape
            out.append(f"\\x{o - 0xDC00:02x}")
        elif c.isprintable():
            out.append(c)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------------------------
# decoding: objects as ordered (key, value) pairs, case-insensitive field lookup


class Object(list[tuple[str, Any]]):
    """A decoded JSON object: its members in document order, duplicates kept."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def loads(text: str) -> Any:
    """Decode JSON text; objects become :class:`Object` (``NaN``/``Infinity`` are refused).

    Raises:
        ValueError: not JSON (Python's decoder message).
    """
    return json.loads(text, object_pairs_hook=Object, parse_constant=_no_constants)


def decode_bytes(data: bytes) -> str:
    """JSON bytes as text; invalid UTF-8 survives as ``surrogateescape`` code points."""
    return data.decode("utf-8", "surrogateescape")


def fold(s: str) -> str:
    """The case folding Go's decoder matches field names with (U+017F long s matches ``s``)."""
    return s.lower().replace("\u017f", "s")


def members(obj: Object, name: str) -> Iterator[Any]:
    """Values of every member that Go would decode into field ``name`` (in document order)."""
    f = fold(name)
    for k, v in obj:
        if k == name or fold(k) == f:
            yield v


def field(obj: Object, name: str, default: Any = None, *, null_resets: bool = False) -> Any:
    """The value Go ends up with in field ``name``: the last matching member's.

    A JSON ``null`` is a no-op for strings, bools and structs; for slices, maps and pointers
    (``null_resets``) it resets the field to ``default``.
    """
    out = default
    for v in members(obj, name):
        if v is not None:
            out = v
        elif null_resets:
            out = default
    return out


Kind = Literal["string", "bool", "time", "object", "list", "map", "struct"]


@dataclass(frozen=True, slots=True)
class GoType:
    """A Go type as the decoder checks it.

    ``name`` is how Go prints the type in errors (``[]string``, ``v1.History``); ``elem`` is the
    element type of a slice or map; a struct has ``fields`` (JSON name -> type) and
    ``struct_name``, the name Go prints before a field path (``Image`` in ``Image.config``;
    empty for an anonymous struct). ``object`` is ``struct {}``: any JSON object.
    """

    name: str
    kind: Kind
    elem: GoType | None = None
    fields: Mapping[str, GoType] = dc_field(default_factory=dict)
    struct_name: str = ""


STRING = GoType("string", "string")
BOOL = GoType("bool", "bool")
TIME = GoType("time.Time", "time")
EMPTY_STRUCT = GoType("struct {}", "object")


def slice_of(elem: GoType) -> GoType:
    """``[]elem``."""
    return GoType(f"[]{elem.name}", "list", elem)


def map_of(elem: GoType) -> GoType:
    """``map[string]elem``."""
    return GoType(f"map[string]{elem.name}", "map", elem)


def struct(name: str, fields: Mapping[str, GoType]) -> GoType:
    """A struct type: ``name`` as Go prints it (``v1.Image``, ``struct { X int }``)."""
    short = "" if " " in name else name.rpartition(".")[2]
    return GoType(name, "struct", fields=fields, struct_name=short)


def _jtype(v: Any) -> str:
    if isinstance(v, Object):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return "string"


def _type_error(v: Any, t: GoType, owner: str, path: str) -> str:
    if not path:
        return f"json: cannot unmarshal {_jtype(v)} into Go value of type {t.name}"
    return (
        f"json: cannot unmarshal {_jtype(v)} into Go struct field {owner}.{path} of type {t.name}"
    )


def check(v: Any, t: GoType, owner: str = "", path: str = "") -> str | None:
    """The first error Go's decoder reports for ``v`` (from :func:`loads`) decoded into ``t``.

    None when Go would decode it. ``owner`` (the innermost struct's name) and ``path`` (the
    field path from the top) are the error context of a value inside a struct; callers leave
    them out.
    """
    if v is None:
        return None
    kind = t.kind
    if kind == "string":
        return None if isinstance(v, str) else _type_error(v, t, owner, path)
    if kind == "bool":
        return None if isinstance(v, bool) else _type_error(v, t, owner, path)
    if kind == "time":
        if not isinstance(v, str):
            return "Time.UnmarshalJSON: input is not a JSON string"
        try:
            Timestamp.parse(v)
        except InvalidArgument as exc:
            return str(exc)
        return None
    if kind == "object":
        return None if isinstance(v, Object) else _type_error(v, t, owner, path)
    if kind == "list":
        if not isinstance(v, list) or isinstance(v, Object):
            return _type_error(v, t, owner, path)
        assert t.elem is not None
        for item in v:
            err = check(item, t.elem, owner, path)
            if err:
                return err
        return None
    if kind == "map":
        if not isinstance(v, Object):
            return _type_error(v, t, owner, path)
        assert t.elem is not None
        for _k, item in v:
            err = check(item, t.elem, owner, path)
            if err:
                return err
        return None
    # struct
    if not isinstance(v, Object):
        return _type_error(v, t, owner, path)
    fields = t.fields
    folded = {fold(k): k for k in fields}
    for k, item in v:
        fname = k if k in fields else folded.get(fold(k))
        if fname is None:
            continue
        err = check(item, fields[fname], t.struct_name, f"{path}.{fname}" if path else fname)
        if err:
            return err
    return None


def unmarshal(data: bytes | str, t: GoType) -> Any:
    """Go's ``json.Unmarshal`` into a value of type ``t``, as a check: the document (from
    :func:`loads`; bytes are read with :func:`decode_bytes`) once Go would accept it.

    Raises:
        ValueError: what Go would report: the syntax error, or the text of :func:`check`.
    """
    doc = loads(decode_bytes(data) if isinstance(data, bytes) else data)
    err = check(doc, t)
    if err:
        raise ValueError(err)
    return doc


def raw_members(text: str) -> dict[str, str]:
    """Top-level members of a JSON object as raw text (Go's ``map[string]json.RawMessage``).

    ``null`` gives ``{}``. For text that :func:`loads` accepted; later duplicates win.

    Raises:
        ValueError: not a JSON object.
    """
    dec = json.JSONDecoder(object_pairs_hook=Object, parse_constant=_no_constants)
    ws = " \t\n\r"
    i, n = 0, len(text)

    def skip(j: int) -> int:
        while j < n and text[j] in ws:
            j += 1
        return j

    i = skip(i)
    if text.startswith("null", i):
        return {}
    if i >= n or text[i] != "{":
        raise ValueError("not a JSON object")
    out: dict[str, str] = {}
    i = skip(i + 1)
    if i < n and text[i] == "}":
        return out
    while True:
        key, i = dec.raw_decode(text, i)
        i = skip(i)
        if text[i] != ":":
            raise ValueError("expected ':'")
        i = skip(i + 1)
        _, end = dec.raw_decode(text, i)
        out[key] = text[i:end]
        i = skip(end)
        if text[i] == "}":
            return out
        if text[i] != ",":
            raise ValueError("expected ',' or '}'")
        i = skip(i + 1)
