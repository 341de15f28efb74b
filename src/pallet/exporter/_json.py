"""JSON bytes the way Go's ``encoding/json`` writes them, so digests match BuildKit's.

Every blob the exporter digests (config, manifest, index, the response's root descriptor) is
encoded here, and only here. The rules (spec §2.4, §5.2, §8):

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
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["compact", "go_quote", "go_string", "marshal", "marshal_indent"]

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
