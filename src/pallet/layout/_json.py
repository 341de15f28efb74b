"""Compact JSON bytes as Go's ``encoding/json`` writes them (for index.json and manifest.json).

UTF-8 output (no ``\\u`` escapes for non-ASCII), Go's HTML-safe escapes for ``<`` ``>`` ``&``
and U+2028/U+2029, compact separators, keys in the order given. The same value therefore always
gives the same bytes, which keeps archives reproducible.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["marshal"]

_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_ESCAPES.update({c: "\\ufffd" for c in range(0xD800, 0xE000)})


def marshal(value: Any) -> bytes:
    """Compact JSON of ``value``, Go-escaped, no trailing newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_ESCAPES).encode("utf-8")
