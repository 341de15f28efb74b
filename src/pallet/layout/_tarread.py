"""A strict, streaming reader of image archives (tar), for :mod:`pallet.layout.load`.

It reads one header at a time from any binary stream (a pipe is fine: nothing seeks) and never
touches the file system. It understands what image archives contain: ustar, GNU and v7 headers,
PAX ``x`` records (``path``, ``linkpath``, ``size``), GNU long names (``L``/``K``) and base-256
sizes. Only regular files, directories, symbolic and hard links are accepted; devices, FIFOs,
sparse files and anything unknown are refused.

Names are checked as they arrive: an absolute name or one with a ``..`` component is refused
(``archive entry <name>: ...``), ``./`` prefixes and empty components are dropped. A symbolic
link's target is resolved lexically against the link's directory and must stay inside the
archive; a hard link must name an earlier entry. Links are reported, not followed: the caller
treats them as aliases of other entries.

A stream that ends before the end-of-archive marker (a zero block) is *truncated* and refused,
so an archive cut at an entry boundary is not mistaken for a shorter complete one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Final, Literal

from ..errors import InvalidArgument, Unsupported

__all__ = ["Entry", "TarReader", "clean_name", "link_target"]

_BLOCK: Final = 512
_ZERO: Final = bytes(_BLOCK)
_MAX_META: Final = 1 << 20  # PAX and GNU long-name payloads
_FILE_TYPES: Final = (b"0", b"\0", b"7")

Kind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member: cleaned ``name`` ('' for the root), kind, data size, link target.

    ``link`` is the cleaned archive path the link designates (for symbolic links already
    resolved against the link's directory).
    """

    name: str
    kind: Kind
    size: int
    link: str = ""


def _show(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def clean_name(name: str) -> str:
    """``./a//b/`` -> ``a/b``; refuses absolute names and ``..`` components."""
    if name.startswith("/"):
        raise InvalidArgument(f"archive entry {_show(name)}: absolute path outside the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"archive entry {_show(name)}: path escapes the archive (..)")
    return "/".join(parts)


def link_target(name: str, target: str) -> str:
    """Where the symbolic link ``name`` -> ``target`` points, as an archive path.

    Raises:
        InvalidArgument: the target is absolute or climbs above the archive root.
    """
    if target.startswith("/") or not target:
        raise InvalidArgument(
            f"archive entry {_show(name)}: symlink to {_show(target)} points outside the archive"
        )
    parts = name.split("/")[:-1]
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise InvalidArgument(
                    f"archive entry {_show(name)}: symlink to {_show(target)} points outside "
                    "the archive"
                )
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _cstr(field: bytes) -> bytes:
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:
        if field[0] == 0xFF:
            raise InvalidArgument(f"archive: negative {what} in a tar header")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    s = _cstr(field).strip(b" \0")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise InvalidArgument(f"archive: invalid {what} {s!r} in a tar header") from None


def _checksum_ok(blk: bytes) -> bool:
    want = _number(blk[148:156], "checksum")
    unsigned = sum(blk[:148]) + 8 * 32 + sum(blk[156:])
    if want == unsigned:
        return True
    signed = unsigned - 2 * sum(b for b in blk[:148] + blk[156:] if b >= 0x80)
    return want == signed


def _pax(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            raise InvalidArgument("archive: malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise InvalidArgument("archive: malformed PAX record length") from None
        rec = data[sp + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not rec.endswith(b"\n") or b"=" not in rec:
            raise InvalidArgument("archive: malformed PAX record")
        k, _, v = rec[:-1].partition(b"=")
        out[k.decode("utf-8", "surrogateescape")] = v
        pos += length
    return out


class TarReader:
    """Iterate an archive: ``next()`` gives the next :class:`Entry` (None at the end marker);
    for a file, ``read()`` gives its data (what is not read is skipped by the next ``next()``).

    Raises (from both):
        InvalidArgument: a malformed or truncated archive, or a refused name or link.
        Unsupported: an entry type image archives do not use (device, FIFO, sparse file).
    """

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._left = 0  # data bytes of the current entry not yet read
        self._pad = 0
        self._name = ""
        self._files: set[str] = set()
        self.offset = 0  # bytes consumed from the stream

    def _exact(self, n: int) -> bytes:
        parts: list[bytes] = []
        need = n
        while need:
            chunk = self._src.read(need)
            if not chunk:
                where = f" in entry {_show(self._name)}" if self._name else ""
                raise InvalidArgument(f"archive: truncated (unexpected end of data{where})")
            parts.append(chunk)
            need -= len(chunk)
        self.offset += n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, n: int = 1 << 20) -> bytes:
        """Up to ``n`` bytes of the current file's data; b"" once it is all read."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        chunk = self._src.read(n)
        if not chunk:
            raise InvalidArgument(
                f"archive: truncated (unexpected end of data in entry {_show(self._name)})"
            )
        self._left -= len(chunk)
        self.offset += len(chunk)
        return chunk

    def _skip_rest(self) -> None:
        while self._left:
            self.read()
        if self._pad:
            self._exact(self._pad)
            self._pad = 0

    def _meta(self, size: int, what: str) -> bytes:
        if size > _MAX_META:
            raise InvalidArgument(f"archive: {what} of {size} bytes is too large")
        data = self._exact(size)
        pad = -size % _BLOCK
        if pad:
            self._exact(pad)
        return data

    def next(self) -> Entry | None:
        self._skip_rest()
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            self._name = ""
            blk = self._exact(_BLOCK)
            if blk == _ZERO:
                return None
            if not _checksum_ok(blk):
                raise InvalidArgument(
                    f"archive: invalid tar header checksum at offset {self.offset - _BLOCK}"
                )
            typ = blk[156:157]
            size = _number(blk[124:136], "size")
            if typ == b"x":
                pax.update(_pax(self._meta(size, "PAX header")))
                continue
            if typ == b"g":
                self._meta(size, "PAX global header")
                continue
            if typ == b"L":
                long_name = _cstr(self._meta(size, "long name"))
                continue
            if typ == b"K":
                long_link = _cstr(self._meta(size, "long link name"))
                continue
            break
        raw = _cstr(blk[0:100])
        if blk[257:263] == b"ustar\x00":
            prefix = _cstr(blk[345:500])
            if prefix:
                raw = prefix + b"/" + raw
        if long_name is not None:
            raw = long_name
        if "path" in pax:
            raw = pax["path"]
        link_raw = long_link if long_link is not None else _cstr(blk[157:257])
        if "linkpath" in pax:
            link_raw = pax["linkpath"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise InvalidArgument("archive: invalid PAX size") from None
        if any(k.startswith("GNU.sparse.") for k in pax):
            raise Unsupported(f"archive entry {raw!r}: sparse files are not supported")
        text = raw.decode("utf-8", "surrogateescape")
        self._name = text
        name = clean_name(text)
        link = link_raw.decode("utf-8", "surrogateescape")
        if typ in _FILE_TYPES:
            if not name:
                raise InvalidArgument(f"archive entry {_show(text)}: a file named like the root")
            self._left = size
            self._pad = -size % _BLOCK
            self._files.add(name)
            return Entry(name, "file", size)
        if size and typ != b"5":
            raise InvalidArgument(f"archive entry {_show(text)}: data on a non-file entry")
        if typ == b"5":
            self._left, self._pad = size, -size % _BLOCK
            return Entry(name, "dir", 0)
        if typ == b"2":
            return Entry(name, "symlink", 0, link_target(name, link))
        if typ == b"1":
            try:
                target = clean_name(link)
            except InvalidArgument:
                raise InvalidArgument(
                    f"archive entry {_show(text)}: hard link to {_show(link)} points outside "
                    "the archive"
                ) from None
            if target not in self._files:
                raise InvalidArgument(
                    f"archive entry {_show(text)}: hard link to {_show(link)}, "
                    "which is not an earlier file of the archive"
                )
            self._files.add(name)
            return Entry(name, "hardlink", 0, target)
        kinds = {b"3": "character device", b"4": "block device", b"6": "FIFO", b"S": "sparse file"}
        what = kinds.get(typ, f"entry type {typ!r}")
        raise Unsupported(f"archive entry {_show(text)}: {what} not allowed in an image archive")
