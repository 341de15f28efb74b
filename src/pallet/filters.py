"""containerd's filter syntax: ``name==foo,labels."a.b"~=^x``.

A filter string is a comma-separated conjunction of terms; several filter strings are a
disjunction. A term is a field path, optionally followed by an operator (``==``, ``!=``, ``~=``)
and a value. A bare field path tests presence. Field path components may be quoted with ``"``;
values may be quoted with ``"`` or written as ``/regex/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InvalidArgument

__all__ = ["Adaptor", "Filter", "parse"]

#: ``field(path) -> (value, present)``
Adaptor = Callable[[Sequence[str]], tuple[str, bool]]


@dataclass(frozen=True, slots=True)
class _Term:
    path: tuple[str, ...]
    op: str  # "", "==", "!=", "~="
    value: str
    regex: re.Pattern[str] | None

    def match(self, field: Adaptor) -> bool:
        value, present = field(self.path)
        if self.op == "":
            return present
        if self.op == "==":
            return present and value == self.value
        if self.op == "!=":
            return not present or value != self.value
        assert self.regex is not None
        return present and self.regex.search(value) is not None


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed disjunction of conjunctions."""

    alternatives: tuple[tuple[_Term, ...], ...]

    def match(self, field: Adaptor) -> bool:
        if not self.alternatives:
            return True
        return any(all(t.match(field) for t in conj) for conj in self.alternatives)


def _scan(text: str) -> list[str]:
    """Split into tokens: quoted strings, /regex/, operators, commas, dots and words."""
    toks: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= len(text):
                raise InvalidArgument(f"filter {text!r}: unterminated quote")
            toks.append('"' + "".join(buf))
            i = j + 1
        elif text.startswith(("==", "!=", "~="), i):
            toks.append(text[i : i + 2])
            i += 2
        elif c in ",.":
            toks.append(c)
            i += 1
        else:
            j = i
            while (
                j < len(text)
                and text[j] not in ',."'
                and not text.startswith(("==", "!=", "~="), j)
            ):
                j += 1
            toks.append(text[i:j].strip())
            i = j
    return toks


def _parse_one(text: str) -> tuple[_Term, ...]:
    terms: list[_Term] = []
    # split on commas outside quotes and regex slashes
    parts: list[str] = []
    buf, quote = [], ""
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in '"':
            quote = ch
            buf.append(ch)
        elif ch == ",":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    for part in parts:
        part = part.strip()
        if not part:
            raise InvalidArgument(f"filter {text!r}: empty term")
        m = re.search(r"(==|!=|~=)", _mask_quotes(part))
        if m:
            lhs, op, rhs = part[: m.start()], m.group(1), part[m.end() :].strip()
        else:
            lhs, op, rhs = part, "", ""
        path = _parse_path(lhs.strip(), text)
        value = rhs
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"/':
            value = value[1:-1]
        elif op and not value:
            raise InvalidArgument(f"filter {text!r}: missing value after {op}")
        regex = None
        if op == "~=":
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise InvalidArgument(f"filter {text!r}: bad regular expression: {exc}") from exc
        terms.append(_Term(path, op, value, regex))
    return tuple(terms)


def _mask_quotes(s: str) -> str:
    out, quote = [], False
    for ch in s:
        if ch == '"':
            quote = not quote
            out.append(ch)
        else:
            out.append("x" if quote else ch)
    return "".join(out)


def _parse_path(s: str, whole: str) -> tuple[str, ...]:
    comps: list[str] = []
    for tok in _scan(s):
        if tok == ".":
            continue
        if tok.startswith('"'):
            comps.append(tok[1:])
        elif re.fullmatch(r"[A-Za-z0-9_\-/:]+", tok):
            comps.append(tok)
        else:
            raise InvalidArgument(f"filter {whole!r}: bad field path {s!r}")
    if not comps:
        raise InvalidArgument(f"filter {whole!r}: missing field path")
    return tuple(comps)


def parse(filters: Sequence[str]) -> Filter:
    """Parse filter strings (OR of the strings, AND inside each).

    Raises:
        InvalidArgument: the syntax is wrong, naming the filter.
    """
    return Filter(tuple(_parse_one(f) for f in filters if f.strip()))
