"""Streaming tar reader for layers and image archives, written for hostile input.

Both of pallet's tar consumers read through it: :mod:`pallet.archive.apply` (a layer onto a
directory) and :mod:`pallet.layout.load` (an image archive into a content store). Each adds its
own policy on top; this module only parses, and never touches the file system.

Why not :mod:`tarfile`
----------------------
* **Digest on the way.** A layer's diff ID is the digest of the whole uncompressed stream,
  padding after the end-of-archive marker included. The reader hands every chunk it reads to an
  optional hasher as the chunk arrives, so each byte is hashed exactly once, by the thread that
  reads it; :meth:`TarReader.drain` reads (and hashes) the rest. tarfile's stream mode reads
  through its own buffer and stops at the marker, so the caller would wrap the file object and
  drain it separately.
* **Bounded memory on hostile input.** tarfile reads a PAX or GNU long-name payload whole,
  whatever size its header claims (``fileobj.read(self._block(self.size))`` in ``_proc_pax`` and
  ``_proc_gnulong``), and its PAX parser had a regular-expression denial of service until
  3.11.10/3.12.6 (CVE-2024-6232). Here such payloads are refused above 1 MiB, as Go's
  ``archive/tar`` refuses them, and at most one of each is held (the next one replaces it, as
  in Go). Numbers are bounded before use (int64 sizes, 32-bit ids, at most 19 PAX digits).
  What is malformed raises :class:`FormatError`, a :class:`~pallet.errors.InvalidArgument`: one
  clear line, never another exception.
* **Go's reading.** containerd reads layers with Go's ``archive/tar``, so where tar readers
  differ pallet reads as Go does: a GNU long name overrides a PAX ``path``, of several PAX
  headers in a row only the last counts, entry types that never carry data (links,
  directories, devices, FIFOs) have size 0 whatever their header says, and a zero block
  followed by a non-zero block is an error.
* **Per-entry cost.** Layers of small files are won or lost per entry. tarfile builds a
  ``TarInfo`` per member through several layers of method calls and decodes every name; this
  reader slices each header out of one reusable 1 MiB buffer, keeps names as bytes, and
  :meth:`TarReader.copy_to` writes file data from that buffer straight to a descriptor
  (figures in ``BENCHMARKS.md``).

Format
------
ustar (with the POSIX ``prefix`` field, and star's shorter one), GNU (``ustar  \\0`` magic,
atime, base-256 numbers, ``L``/``K`` long names) and PAX (``x`` records: ``path``,
``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``, ``atime``, ``SCHILY.xattr.*``; ``g``
global headers are skipped). Old regular files (typeflag NUL) and contiguous files (``7``) are
reported as regular files (``0``), an old regular file whose name ends in ``/`` as a directory,
and any entry with ``GNU.sparse.*`` records as :data:`SPARSETYPE`. Other typeflags are reported
as they are; the consumer decides what it accepts.

The end of the archive is two zero blocks, or one zero block followed by the end of the stream;
:attr:`TarReader.end_marker` says whether it was seen (a stream that simply stops at an entry
boundary has none).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from ..errors import InvalidArgument
from .tar import (
    BLKTYPE,
    BLOCK_SIZE,
    CHRTYPE,
    CONTTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    XHDTYPE,
    display,
)

__all__ = ["SPARSETYPE", "Entry", "FormatError", "Hasher", "TarReader"]

#: Reported type of a GNU sparse file (typeflag ``S``, or ``GNU.sparse.*`` PAX records).
SPARSETYPE: Final = b"S"

_CHUNK: Final = 1 << 20  # stream read size and buffer size; also the largest single os.write
_ZERO_BLOCK: Final = bytes(BLOCK_SIZE)
_MAX_META: Final = 1 << 20  # largest PAX / GNU long-name payload (Go: maxSpecialFileSize)
_MAX_INT64: Final = (1 << 63) - 1
_MAX_ID: Final = (1 << 32) - 1  # uid, gid, device major/minor: 32 bits on Linux
_MAX_DIGITS: Final = 19  # decimal digits of an int64

# typeflags only read: old regular file, global PAX header, GNU long name and link
_AREGTYPE: Final = b"\0"
_GLOBAL_PAX: Final = b"g"
_LONGNAME: Final = b"L"
_LONGLINK: Final = b"K"
# types that never carry data (Go's isHeaderOnlyType)
_HEADER_ONLY: Final = frozenset((LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE))
_META_TYPES: Final = frozenset((XHDTYPE, _GLOBAL_PAX, _LONGNAME, _LONGLINK))
_XATTR_PREFIX: Final = b"SCHILY.xattr."


class _Malformed(Exception):
    """A field does not parse; becomes a :class:`FormatError` naming the entry."""


class Hasher(Protocol):
    """What the reader feeds every byte it reads to (``hashlib`` objects qualify)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


class FormatError(InvalidArgument):
    """The stream is not a well-formed tar archive.

    ``entry`` is the raw name of the entry being read (b"" before the first), ``reason`` the
    message without it, ``truncated`` whether the stream ended early. Consumers re-raise with
    their own noun (``layer entry <name>: ...``).
    """

    def __init__(self, reason: str, entry: bytes, *, truncated: bool = False) -> None:
        where = f"tar entry {display(entry)}" if entry else "tar stream"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.entry = entry
        self.truncated = truncated


@dataclass(slots=True)
class Entry:
    """One archive member, every field resolved (PAX and GNU records applied).

    ``name`` and ``linkname`` are raw bytes as written (not cleaned; may be absolute or hold
    ``..``). ``type`` is the typeflag (``tar.REGTYPE``... or :data:`SPARSETYPE`), ``mode`` the
    permission bits with set-id and sticky (``& 0o7777``), ``size`` the data bytes that follow
    (0 for types without data). ``mtime`` is in nanoseconds since the epoch, as written (may be
    negative or far in the future); ``atime`` likewise, or None when the archive has none.
    ``xattrs`` are the ``SCHILY.xattr.*`` records, name and raw value.

    One is built per entry, so the reader builds it with positional arguments (matching twelve
    keywords costs more than the rest of the construction) and it is not frozen (a frozen
    ``__init__`` sets every field through ``object.__setattr__``); treat it as read-only.
    """

    name: bytes
    type: bytes
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    atime: int | None
    linkname: bytes
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[bytes, bytes], ...]


# ---------------------------------------------------------------------------------------------
# fields


def _cstr(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _number(field: bytes, what: str) -> int:
    """A ustar numeric field: octal digits (space/NUL padded) or GNU base-256 (signed)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field, "big") & ~(1 << (8 * len(field) - 1))
        if field[0] & 0x40:  # negative, two's complement
            value -= 1 << (8 * len(field) - 1)
        if not -_MAX_INT64 - 1 <= value <= _MAX_INT64:  # Go: must fit an int64
            raise _Malformed(f"{what} out of range")
        return value
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits:
        return 0
    if digits.translate(None, b"01234567"):
        raise _Malformed(f"invalid {what} field {field!r}")
    return int(digits, 8)


def _decimal(value: bytes, what: str) -> int:
    if not value.isdigit() or len(value) > _MAX_DIGITS or int(value) > _MAX_INT64:
        raise _Malformed(f"invalid PAX {what} {value[:40]!r}")
    return int(value)


def _pax_time(value: bytes) -> int:
    """A PAX time record (``[-]seconds[.fraction]``) in nanoseconds."""
    neg = value.startswith(b"-")
    sec, _, frac = value.removeprefix(b"-").partition(b".")
    if not sec.isdigit() or len(sec) > _MAX_DIGITS or (frac and not frac.isdigit()):
        raise _Malformed(f"invalid PAX time {value[:40]!r}")
    ns = int(sec) * 1_000_000_000 + int((frac[:9] + b"000000000")[:9])
    return -ns if neg else ns


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    """Parse ``"<len> <key>=<value>\\n"`` records (values are raw bytes: xattrs are binary)."""
    out: dict[bytes, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # some writers pad the record block with NULs
            if data[pos:].strip(b"\0"):
                raise _Malformed("invalid PAX header: data after NUL padding")
            break
        sp = data.find(b" ", pos, pos + 24)
        if sp < 0 or not data[pos:sp].isdigit():
            raise _Malformed("invalid PAX record length")
        length = int(data[pos:sp])
        rec_end = pos + length
        if length <= sp - pos + 1 or rec_end > end or data[rec_end - 1] != 0x0A:
            raise _Malformed("invalid PAX record")
        key, eq, value = data[sp + 1 : rec_end - 1].partition(b"=")
        if not eq or not key:
            raise _Malformed("invalid PAX record (no key)")
        out[key] = value
        pos = rec_end
    return out


def _signed_checksum_ok(h: bytes) -> bool:
    """The checksum of some old writers, which summed signed chars (the usual one, unsigned
    bytes with the checksum field as 8 spaces, is checked inline)."""
    want = _number(h[148:156], "checksum")
    unsigned = sum(h) - sum(h[148:156]) + 8 * 32
    return want == unsigned - 256 * sum(1 for b in h[:148] + h[156:] if b & 0x80)


# ---------------------------------------------------------------------------------------------
# the reader


class TarReader:
    """Read a tar stream entry by entry: :meth:`next`, then the entry's data (optional).

    The data of the entry last returned is read with :meth:`read` or :meth:`copy_to`; what is
    left unread is skipped by the next :meth:`next`. ``stream`` needs ``read`` and uses
    ``readinto`` when it has one; nothing seeks. ``hasher`` sees every byte read from the stream,
    once, in order. ``size`` counts those bytes.

    Raises (from every method):
        FormatError: the stream is not a well-formed tar archive, or ends inside an entry.
        whatever ``stream.read`` raises.
    """

    def __init__(self, stream: BinaryIO, *, hasher: Hasher | None = None) -> None:
        readinto = getattr(stream, "readinto", None)
        self._readinto: Callable[[memoryview], int | None] | None = readinto
        self._read: Callable[[int], bytes] = stream.read
        self._buf = bytearray(_CHUNK)
        self._mv = memoryview(self._buf)
        self._pos = 0
        self._end = 0
        self._left = 0  # data bytes of the current entry not consumed yet
        self._pad = 0  # then its padding to the block size
        self._hasher = hasher
        self.size = 0
        #: the raw name of the entry being read (for messages)
        self.current = b""
        #: the end-of-archive marker was read
        self.end_marker = False

    def _error(self, reason: str, *, truncated: bool = False) -> FormatError:
        return FormatError(reason, self.current, truncated=truncated)

    def _truncated(self) -> FormatError:
        return self._error("unexpected end of stream", truncated=True)

    # -- raw input -------------------------------------------------------------------------

    def _read_into(self, start: int) -> int:
        """Read at most what fits into the buffer from ``start``; hash it; 0 at EOF."""
        mv = self._mv
        if self._readinto is not None:
            n = self._readinto(mv[start:]) or 0
        else:
            data = self._read(_CHUNK - start)
            n = len(data)
            mv[start : start + n] = data
        if n:
            if self._hasher is not None:
                self._hasher.update(mv[start : start + n])
            self.size += n
        return n

    def _fill(self, need: int) -> bool:
        """Make ``need`` (<= _CHUNK) bytes available at ``_pos``; False at EOF."""
        avail = self._end - self._pos
        if avail >= need:
            return True
        if self._pos:
            if avail:
                self._mv[:avail] = self._mv[self._pos : self._end]
            self._pos = 0
            self._end = avail
        while self._end < need:
            n = self._read_into(self._end)
            if not n:
                return False
            self._end += n
        return True

    def _refill(self) -> int:
        """The buffer is used up: read the next chunk into it; bytes available (0 at EOF)."""
        self._pos = 0
        self._end = self._read_into(0)
        return self._end

    def _skip_bytes(self, n: int) -> None:
        avail = self._end - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        while n:
            got = self._refill()
            if not got:
                raise self._truncated()
            if got > n:
                self._pos = n
                return
            n -= got
        self._pos = self._end

    def drain(self) -> None:
        """Consume (and hash) the rest of the stream."""
        self._left = self._pad = 0
        while self._refill():
            pass

    # -- entry data ------------------------------------------------------------------------

    def read(self, n: int = _CHUNK) -> bytes:
        """Up to ``n`` bytes of the current entry's data (at most one chunk); b"" at its end."""
        if n < 0 or n > self._left:
            n = self._left
        if not n:
            return b""
        pos = self._pos
        if pos == self._end:
            if not self._refill():
                raise self._truncated()
            pos = 0
        k = min(n, self._end - pos)
        self._pos = pos + k
        self._left -= k
        return bytes(self._mv[pos : pos + k])

    def copy_to(self, fd: int) -> None:
        """Write the rest of the current entry's data to the file descriptor ``fd``."""
        mv = self._mv
        remaining = self._left
        while remaining:
            pos = self._pos
            avail = self._end - pos
            if not avail:
                avail = self._refill()
                if not avail:
                    raise self._truncated()
                pos = 0
            k = avail if avail < remaining else remaining
            chunk = mv[pos : pos + k]
            written = os.write(fd, chunk)
            while written < k:
                written += os.write(fd, chunk[written:])
            self._pos = pos + k
            remaining -= k
            self._left = remaining

    def _payload(self, size: int, what: str) -> bytes:
        """The whole data of a metadata entry (PAX, GNU long name), bounded."""
        if size > _MAX_META:
            raise self._error(f"{what} of {size} bytes is too large")
        out = bytearray()
        remaining = size
        while remaining:
            if self._end == self._pos and not self._refill():
                raise self._truncated()
            k = min(self._end - self._pos, remaining)
            out += self._mv[self._pos : self._pos + k]
            self._pos += k
            remaining -= k
        self._skip_bytes(-size % BLOCK_SIZE)
        return bytes(out)

    def _block(self) -> bytes | None:
        """The next 512-byte block; None at the end of the stream (at a block boundary)."""
        if self._end - self._pos < BLOCK_SIZE and not self._fill(BLOCK_SIZE):
            if self._end == self._pos:
                return None
            raise self._truncated()
        pos = self._pos
        self._pos = pos + BLOCK_SIZE
        return bytes(self._mv[pos : pos + BLOCK_SIZE])

    # -- headers ---------------------------------------------------------------------------

    def next(self) -> Entry | None:
        """The next entry; None at the end of the archive (what follows is not read)."""
        skip = self._left + self._pad
        if skip:
            self._left = self._pad = 0
            self._skip_bytes(skip)
        try:
            return self._next()
        except _Malformed as exc:
            raise self._error(str(exc)) from None

    def _next(self) -> Entry | None:
        pax: dict[bytes, bytes] | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            h = self._block()
            if h is None:
                if pax is not None or longname is not None or longlink is not None:
                    raise self._truncated()
                return None
            if h == _ZERO_BLOCK:
                h2 = self._block()
                if h2 is None or h2 == _ZERO_BLOCK:
                    self.end_marker = True
                    return None
                raise self._error("non-zero block after the end-of-archive marker")
            self.current = h[:100].split(b"\0", 1)[0]
            chk = h[148:156]
            if _number(chk, "checksum") != sum(h) - sum(chk) + 256 and not _signed_checksum_ok(h):
                raise self._error("header checksum mismatch")
            t = h[156:157]
            size = _number(h[124:136], "size")
            if size < 0:
                raise self._error("negative size")
            if t not in _META_TYPES:
                return self._entry(h, t, size, pax, longname, longlink)
            if t == XHDTYPE:
                pax = _parse_pax(self._payload(size, "PAX header"))
            elif t == _GLOBAL_PAX:
                self._skip_bytes(size + (-size % BLOCK_SIZE))
            elif t == _LONGNAME:
                longname = _cstr(self._payload(size, "GNU long name"))
            else:
                longlink = _cstr(self._payload(size, "GNU long link name"))

    def _entry(
        self,
        h: bytes,
        t: bytes,
        size: int,
        pax: dict[bytes, bytes] | None,
        longname: bytes | None,
        longlink: bytes | None,
    ) -> Entry:
        name = self.current
        atime: int | None = None
        magic = h[257:265]
        if magic[:6] == b"ustar\0":
            # POSIX ustar/pax: prefix field; star puts atime/ctime after a shorter prefix
            prefix = (h[345:476] if h[508:512] == b"tar\0" else h[345:500]).split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        elif magic == b"ustar  \0" and h[345]:
            atime = _number(h[345:357], "atime") * 1_000_000_000
        linkname = h[157:257].split(b"\0", 1)[0]
        mode = _number(h[100:108], "mode") & 0o7777
        uid = _number(h[108:116], "uid")
        gid = _number(h[116:124], "gid")
        mtime = _number(h[136:148], "mtime") * 1_000_000_000
        major = minor = 0
        if t in (CHRTYPE, BLKTYPE):
            major = _number(h[329:337], "devmajor")
            minor = _number(h[337:345], "devminor")
            if not (0 <= major <= _MAX_ID and 0 <= minor <= _MAX_ID):
                raise self._error(f"device {major}:{minor} out of range")
        xattrs: tuple[tuple[bytes, bytes], ...] = ()
        if pax:
            if v := pax.get(b"path"):
                name = v
            if v := pax.get(b"linkpath"):
                linkname = v
            if v := pax.get(b"size"):
                size = _decimal(v, "size")
            if v := pax.get(b"uid"):
                uid = _decimal(v, "uid")
            if v := pax.get(b"gid"):
                gid = _decimal(v, "gid")
            if v := pax.get(b"mtime"):
                mtime = _pax_time(v)
            if v := pax.get(b"atime"):
                atime = _pax_time(v)
            xattrs = tuple(
                (key[len(_XATTR_PREFIX) :], value)
                for key, value in pax.items()
                if key.startswith(_XATTR_PREFIX)
            )
            if any(key.startswith(b"GNU.sparse.") for key in pax):
                t = SPARSETYPE
        if longname is not None:
            name = longname
        if longlink is not None:
            linkname = longlink
        self.current = name
        if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
            raise self._error(f"owner {uid}:{gid} out of range")
        if t == _AREGTYPE:
            t = DIRTYPE if name.endswith(b"/") else REGTYPE
        elif t == CONTTYPE:
            t = REGTYPE
        if t in _HEADER_ONLY:
            size = 0  # as Go's archive/tar: these types never carry data
        self._left = size
        self._pad = -size % BLOCK_SIZE
        # in field order: name, type, size, mode, uid, gid, mtime, atime, linkname, devmajor,
        # devminor, xattrs
        return Entry(name, t, size, mode, uid, gid, mtime, atime, linkname, major, minor, xattrs)
