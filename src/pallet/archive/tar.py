"""Deterministic, fast tar stream writer for OCI layers.

Why a hand-written writer
-------------------------
We do not use :mod:`tarfile`, for two reasons:

* **Speed.** Layers of small files are won or lost in the per-entry cost of the writer. tarfile
  builds a ``TarInfo`` object per member, encodes every field through several layers of method
  calls and writes each header and each file separately, which makes it many times slower
  than a bare walk that reads the same files. This writer packs a header with one
  :class:`struct.Struct` call into a reusable 1 MiB buffer, computes the checksum in C
  (:func:`zlib.adler32` over the variable fields, see :func:`_checksum`), reads file data
  straight into that buffer with :func:`os.readv`, and hands the sink a memoryview only when
  the buffer is full, which brings it close to the bare walk (figures in BENCHMARKS.md).
* **Determinism.** The bytes of a layer are its diffID, so every field is under our control:
  no uname/gname lookups, no atime/ctime, no process ids in PAX header names (GNU tar writes
  ``PaxHeaders.<pid>``), sorted PAX records, and no record padding that depends on a blocking
  factor.

Format
------
The encoding follows Go's ``archive/tar`` writer with ``Format = FormatPAX``, which is what
containerd's layer writer uses (spec/containerd.md §4.4):

* Plain USTAR headers (magic ``ustar\\0``, version ``00``). Numeric fields are zero-padded
  octal with a NUL terminator, the checksum is six octal digits, NUL and a space;
  ``devmajor``/``devminor`` are always filled; uname/gname are empty.
* A name longer than 100 bytes that is ASCII and can be split at a ``/`` into the 155-byte
  prefix and the 100-byte name field uses the USTAR prefix, exactly as Go does.
* Otherwise a PAX extended header (typeflag ``x``, named ``<dir>/PaxHeaders.0/<base>`` like Go)
  precedes the entry when any field does not fit USTAR: ``path``/``linkpath`` (too long or not
  ASCII), ``size`` (8 GiB or more), ``uid``/``gid`` (above 0o7777777), ``mtime`` (negative or
  beyond 0o77777777777) and every extended attribute as ``SCHILY.xattr.<name>``. Records are
  sorted by key. The fields that overflowed are written as zero in the USTAR header, and the
  name fields get an ASCII-only, truncated fallback, again as Go does.
* Names that are not valid UTF-8 are stored as raw bytes in ``path``/``linkpath``, as Go and
  GNU tar do. We do not add POSIX.1-2008's ``hdrcharset=BINARY``: GNU tar 1.34 warns
  "Ignoring unknown extended header keyword" for it, Go ignores it, and Python's tarfile
  decodes raw PAX names without it (UTF-8 first, then the filesystem encoding with
  surrogateescape), so it would buy nothing.
* The archive ends with two 512-byte zero blocks and nothing more, like Go's ``Writer.Close``.
  We do **not** pad to GNU tar's 10240-byte record size: the padding carries no information
  and readers do not need it.

Policy (what goes into an entry: which mtime, which xattrs, which order) belongs to the caller,
:mod:`pallet.archive.diff`; this module encodes faithfully what it is given and checks that the
stream stays well formed (data sizes match headers, no field silently lost).

Buffer lifetime
---------------
The writer reuses one buffer. ``sink.write`` receives a memoryview into it which is only valid
during the call: a sink that keeps data for later (a queue to another thread, say) must copy it
(``bytes(view)``). Hashers and files consume the data within the call and need no copy.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from typing import Final, Protocol

from ..errors import FailedPrecondition, InvalidArgument

__all__ = [
    "BLKTYPE",
    "BLOCK_SIZE",
    "CHRTYPE",
    "CONTTYPE",
    "DIRTYPE",
    "FIFOTYPE",
    "LNKTYPE",
    "REGTYPE",
    "SYMTYPE",
    "WHITEOUT_PREFIX",
    "XHDTYPE",
    "Sink",
    "TarWriter",
    "display",
    "encode_header",
    "whiteout_name",
]

# Typeflags (POSIX ustar). Only these may be written through the public API.
REGTYPE: Final = b"0"
LNKTYPE: Final = b"1"
SYMTYPE: Final = b"2"
CHRTYPE: Final = b"3"
BLKTYPE: Final = b"4"
DIRTYPE: Final = b"5"
FIFOTYPE: Final = b"6"
CONTTYPE: Final = b"7"  # contiguous file: read as a regular file, never written
XHDTYPE: Final = b"x"  # PAX extended header of the next entry

#: An entry ``dir/.wh.<name>`` deletes ``dir/<name>`` of the layers below (OCI image-spec).
WHITEOUT_PREFIX: Final = b".wh."

BLOCK_SIZE: Final = 512
_DATA_TYPES: Final = frozenset({REGTYPE, CONTTYPE})
_TYPES: Final = frozenset(
    {REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE}
)

_MAX_OCT7: Final = 0o7777777  # 8-byte numeric fields: 7 octal digits + NUL
_MAX_OCT11: Final = 0o77777777777  # 12-byte numeric fields: 11 octal digits + NUL
_NAME_SIZE: Final = 100
_PREFIX_SIZE: Final = 155

# The header as nine slices: name | mode uid gid size mtime | chksum | typeflag | linkname |
# magic+version | uname+gname | devmajor+devminor | prefix | 12 bytes padding. ``s`` fields are
# NUL-padded and pack_into zero-fills the padding, so every byte of the block is written.
_HEADER: Final = struct.Struct("100s48s8sc100s8s64s16s155s12x")
_NUMS: Final = b"%07o\0%07o\0%07o\0%011o\0%011o"  # 47 bytes; the 48th is the NUL pad
_CHK_BLANK: Final = b"        "  # the checksum is computed with its own field as spaces
_MAGIC: Final = b"ustar\x0000"
_DEVS: Final = b"%07o\0%07o"
_DEVS_ZERO: Final = _DEVS % (0, 0)
_ZEROS: Final = bytes(2 * BLOCK_SIZE)
_LINK_TYPES: Final = frozenset({LNKTYPE, SYMTYPE})
# byte sum of the header fields that are the same in every fast-path header
_CHK_CONST: Final = sum(_CHK_BLANK) + sum(_MAGIC) + sum(_DEVS_ZERO)
_adler32: Final = zlib.adler32
_NON_ASCII: Final = bytes(range(0x80, 0x100)) + b"\0"


class Sink(Protocol):
    """Where the tar stream goes: a file, a hasher, a compressor.

    ``write`` must consume ``data`` before it returns (see "Buffer lifetime" above); its return
    value is ignored.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


def _checksum(block: memoryview) -> int:
    """Unsigned byte sum of a 512-byte header block, computed in C.

    Adler-32's low half is ``1 + sum(bytes) mod 65521``. Up to 256 bytes sum to at most
    256 * 255 = 65280, below the modulus, so the sum of each half block is exact.
    """
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _pack(
    name: bytes,
    nums: bytes,
    typeflag: bytes,
    linkname: bytes,
    devs: bytes,
    prefix: bytes,
) -> bytes:
    """One complete 512-byte USTAR block with its checksum."""
    blk = bytearray(BLOCK_SIZE)
    _HEADER.pack_into(blk, 0, name, nums, _CHK_BLANK, typeflag, linkname, _MAGIC, b"", devs, prefix)
    blk[148:155] = b"%06o\0" % _checksum(memoryview(blk))
    return bytes(blk)


def _to_ascii(s: bytes) -> bytes:
    """Go's ``toASCII``: drop every byte that is not 7-bit ASCII (and NUL)."""
    return s if s.isascii() and b"\0" not in s else s.translate(None, _NON_ASCII)


def _fallback(s: bytes, size: int) -> bytes:
    """The best-effort USTAR field for a string that lives in a PAX record (Go's formatString).

    Truncated to the field; a truncation that would end in ``/`` loses the slashes, so that
    readers which ignore PAX do not take a file for a directory.
    """
    s = _to_ascii(s)
    return s[:size].rstrip(b"/") if len(s) > size else s


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: (prefix, suffix) for an ASCII name of 101..256 bytes, or None."""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1] == 0x2F:  # "/"
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > _NAME_SIZE or nlen == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1 :]


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<len> <key>=<value>\\n"`` where ``<len>`` counts the whole record, itself included."""
    size = len(key) + len(value) + 3
    size += len(b"%d" % size)
    rec = b"%d %s=%s\n" % (size, key, value)
    if len(rec) != size:  # adding the length's digits added a digit
        rec = b"%d %s=%s\n" % (len(rec), key, value)
    return rec


def _pax_header_name(name: bytes) -> bytes:
    """Go's ``path.Join(dir, "PaxHeaders.0", base)``, made ASCII and fitted to the name field."""
    head, _, base = name.rpartition(b"/")
    parts = [p for p in (head, b"PaxHeaders.0", base) if p]
    return _fallback(b"/".join(parts), _NAME_SIZE).rstrip(b"/")


def display(name: bytes) -> str:
    """A raw tar name for one-line messages: undecodable bytes as ``\\xNN``, control characters
    escaped (``\\n``)."""
    s = name.decode("utf-8", "backslashreplace")
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in s)


def encode_header(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    mtime: int,
    size: int = 0,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Mapping[bytes, bytes] | None = None,
) -> bytes:
    """The header block(s) of one entry: an optional PAX header with its records, then USTAR.

    This is the reference encoder; :meth:`TarWriter.add_header` produces the same bytes (with a
    faster path for the common case).

    Args:
        name: path inside the archive; directories should end in ``/``.
        typeflag: one of the ``*TYPE`` constants.
        mode: permission bits including setuid/setgid/sticky (0..0o7777).
        mtime: whole seconds since the epoch (may be negative).
        size: data bytes that follow; must be 0 for all but regular files.
        linkname: target of a hard link (``LNKTYPE``) or symlink (``SYMTYPE``).
        xattrs: extended attributes, written as ``SCHILY.xattr.<name>`` PAX records.

    Raises:
        InvalidArgument: a value cannot be represented (empty name, NUL bytes, ``=`` in an
            xattr name, negative ids, device numbers beyond 7 octal digits, ...).
    """
    if not name or b"\0" in name:
        raise InvalidArgument(f"tar entry {display(name)!r}: name is empty or contains NUL")
    _check(name, typeflag, mode, uid, gid, size, linkname, devmajor, devminor)
    devs = _DEVS % (devmajor, devminor)
    records: dict[bytes, bytes] = {}
    prefix = b""
    hname = name
    if len(name) > _NAME_SIZE or not name.isascii():
        records[b"path"] = name
        split = _split_ustar(name)
        if split is not None:
            prefix, hname = split
    if len(linkname) > _NAME_SIZE or not linkname.isascii():
        records[b"linkpath"] = linkname
    if uid > _MAX_OCT7:
        records[b"uid"] = b"%d" % uid
    if gid > _MAX_OCT7:
        records[b"gid"] = b"%d" % gid
    if size > _MAX_OCT11:
        records[b"size"] = b"%d" % size
    if not 0 <= mtime <= _MAX_OCT11:
        records[b"mtime"] = b"%d" % mtime
    if xattrs:
        for key, value in xattrs.items():
            if not key or b"=" in key or b"\0" in key:
                what = f"tar entry {display(name)!r}: xattr name {display(key)!r}"
                raise InvalidArgument(f"{what} cannot be stored in PAX")
            records[b"SCHILY.xattr." + key] = bytes(value)

    if not records or (len(records) == 1 and prefix):
        # Plain USTAR, possibly with the name split into prefix + name like Go's writer.
        nums = _NUMS % (mode, uid, gid, size, mtime)
        return _pack(hname, nums, typeflag, linkname, devs, prefix)

    data = b"".join(_pax_record(k, records[k]) for k in sorted(records))
    pax_nums = _NUMS % (0, 0, 0, len(data), 0)
    out = [
        _pack(_pax_header_name(name), pax_nums, XHDTYPE, b"", b"", b""),
        data,
        _ZEROS[: -len(data) % BLOCK_SIZE],
    ]
    nums = _NUMS % (
        mode,
        uid if uid <= _MAX_OCT7 else 0,
        gid if gid <= _MAX_OCT7 else 0,
        size if size <= _MAX_OCT11 else 0,
        mtime if 0 <= mtime <= _MAX_OCT11 else 0,
    )
    out.append(
        _pack(
            _fallback(name, _NAME_SIZE),
            nums,
            typeflag,
            _fallback(linkname, _NAME_SIZE),
            devs,
            b"",
        )
    )
    return b"".join(out)


def _check(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> None:
    what = f"tar entry {display(name)!r}"
    if typeflag not in _TYPES:
        raise InvalidArgument(f"{what}: unsupported typeflag {typeflag!r}")
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"{what}: mode {mode:#o} outside 0..0o7777")
    if uid < 0 or gid < 0:
        raise InvalidArgument(f"{what}: negative uid/gid {uid}/{gid}")
    if size < 0 or (size and typeflag not in _DATA_TYPES):
        raise InvalidArgument(f"{what}: size {size} not allowed for typeflag {typeflag!r}")
    if b"\0" in linkname:
        raise InvalidArgument(f"{what}: link name contains NUL")
    if typeflag in _LINK_TYPES and not linkname:
        raise InvalidArgument(f"{what}: link without a target")
    if not (0 <= devmajor <= _MAX_OCT7 and 0 <= devminor <= _MAX_OCT7):
        raise InvalidArgument(f"{what}: device number {devmajor},{devminor} does not fit")


def whiteout_name(path: bytes) -> bytes:
    """The entry name that deletes ``path`` (``a/b/c`` -> ``a/b/.wh.c``)."""
    path = path.rstrip(b"/")
    head, sep, base = path.rpartition(b"/")
    if not base or base in (b".", b".."):
        raise InvalidArgument(f"whiteout {display(path)!r}: not a deletable path")
    return head + sep + WHITEOUT_PREFIX + base


class TarWriter:
    """Buffered tar stream writer.

    Lifecycle: for each entry call :meth:`add_header`; if its ``size`` is not zero, follow with
    exactly ``size`` bytes of data through :meth:`write` and/or :meth:`copy_fd` (padding is
    added automatically). :meth:`close` writes the end-of-archive blocks and flushes. The
    writer does not order, deduplicate or validate paths: that is the caller's policy.

    ``entries`` counts entries (a PAX extended header is part of its entry) and
    ``bytes_written`` the stream bytes produced so far, flushed or still buffered.

    Raises:
        InvalidArgument: from :meth:`add_header`, see :func:`encode_header`.
        FailedPrecondition: data does not match the announced size, or use after close.
    """

    __slots__ = (
        "_buf",
        "_cap",
        "_closed",
        "_entry",
        "_flushed",
        "_mv",
        "_pad",
        "_pos",
        "_probe",
        "_remaining",
        "_sink",
        "entries",
    )

    def __init__(self, sink: Sink, *, buffer_size: int = 1 << 20) -> None:
        if buffer_size < 4 * BLOCK_SIZE:
            raise InvalidArgument(f"buffer size {buffer_size}: must be at least {4 * BLOCK_SIZE}")
        self._sink = sink
        self._buf = bytearray(buffer_size)
        self._mv = memoryview(self._buf)
        self._cap = buffer_size
        self._pos = 0
        self._flushed = 0
        self._probe = bytearray(1)  # the byte past an entry's data that copy_fd must not get
        self._remaining = 0  # data bytes the current entry still needs
        self._pad = 0  # zero bytes that follow the current entry's data
        self._entry = b""
        self._closed = False
        self.entries = 0

    @property
    def bytes_written(self) -> int:
        return self._flushed + self._pos

    def add_header(
        self,
        name: bytes,
        typeflag: bytes,
        mode: int,
        uid: int,
        gid: int,
        mtime: int,
        size: int = 0,
        linkname: bytes = b"",
        devmajor: int = 0,
        devminor: int = 0,
        xattrs: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Start an entry; see :func:`encode_header` for the arguments."""
        if self._remaining or self._closed:
            self._unexpected()
        if (
            not xattrs
            and len(name) <= _NAME_SIZE
            and len(linkname) <= _NAME_SIZE
            and 0 <= uid <= _MAX_OCT7
            and 0 <= gid <= _MAX_OCT7
            and 0 <= mode <= 0o7777
            and 0 <= mtime <= _MAX_OCT11
            and 0 <= size <= _MAX_OCT11
            and typeflag in (_DATA_TYPES if size else _TYPES)
            and not devmajor
            and not devminor
            and name
            and name.isascii()
            and linkname.isascii()
            and b"\0" not in name
            and (b"\0" not in linkname if linkname else typeflag not in _LINK_TYPES)
        ):
            # Fast path: a plain USTAR header packed in place (same bytes as encode_header).
            # The checksum is summed from the variable fields (see _checksum for why Adler-32
            # gives exact byte sums of up to 256 bytes) plus the precomputed constant fields.
            nums = _NUMS % (mode, uid, gid, size, mtime)
            chk = (
                _CHK_CONST
                + typeflag[0]
                + (_adler32(name) & 0xFFFF)
                + (_adler32(nums) & 0xFFFF)
                + (_adler32(linkname) & 0xFFFF)
                - 3
            )
            p = self._pos
            if p + BLOCK_SIZE > self._cap:
                self._flush()
                p = 0
            _HEADER.pack_into(
                self._buf,
                p,
                name,
                nums,
                b"%06o\0 " % chk,
                typeflag,
                linkname,
                _MAGIC,
                b"",
                _DEVS_ZERO,
                b"",
            )
            self._pos = p + BLOCK_SIZE
        else:
            self._put(
                encode_header(
                    name,
                    typeflag,
                    mode,
                    uid,
                    gid,
                    mtime,
                    size,
                    linkname,
                    devmajor,
                    devminor,
                    xattrs,
                )
            )
        self.entries += 1
        if size:
            self._remaining = size
            self._pad = -size % BLOCK_SIZE
            self._entry = name

    def add_whiteout(self, path: bytes, mtime: int) -> None:
        """Write the whiteout entry that deletes ``path`` in the layers below.

        A whiteout is an empty regular file with mode 0 and owner 0:0, as containerd writes it;
        ``mtime`` should be a fixed value (containerd uses "now", which makes layers
        unreproducible).
        """
        self.add_header(whiteout_name(path), REGTYPE, 0, 0, 0, mtime)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append data of the current entry (at most the bytes still owed to it)."""
        src = memoryview(data).cast("B")
        n = len(src)
        if n > self._remaining:
            raise FailedPrecondition(
                f"tar entry {display(self._entry)!r}: {n} bytes written, "
                f"only {self._remaining} left of its size"
            )
        if not n:
            return
        mv = self._mv
        cap = self._cap
        p = self._pos
        off = 0
        while off < n:
            if p == cap:
                self._pos = p
                self._flush()
                p = 0
            k = min(n - off, cap - p)
            mv[p : p + k] = src[off : off + k]
            p += k
            off += k
        self._pos = p
        self._remaining -= n
        if not self._remaining:
            self._end_data()

    def copy_fd(self, fd: int) -> int:
        """Read the current entry's remaining data from ``fd`` (at its current offset).

        The last read asks for one byte more than the entry needs, into a spare buffer: a file
        that has it grew after it was stat'ed, and would otherwise be cut at the header's size
        (Go's ``archive/tar`` fails such a copy with ``ErrWriteTooLong``). This costs no extra
        system call.

        Returns:
            the number of reads it took: more than one means time passed (the sink ran)
            between the first and the last byte, so the caller may want to check the file.

        Raises:
            FailedPrecondition: the file ended early (it shrank after it was stat'ed) or goes
                on past the entry's size (it grew).
            OSError: reading failed (the caller knows the path and translates it).
        """
        rem = self._remaining
        if not rem:
            return 0
        mv = self._mv
        cap = self._cap
        p = self._pos
        readv = os.readv
        reads = 0
        while rem:
            room = cap - p
            if not room:
                self._pos = p
                self._flush()
                p = 0
                room = cap
            # the last read of the entry also asks for the byte after it, into the probe
            last = rem <= room
            n = readv(fd, [mv[p : p + rem], self._probe] if last else [mv[p:cap]])
            reads += 1
            if not n or n > rem:
                self._pos = p
                self._remaining = rem
                raise FailedPrecondition(
                    f"tar entry {display(self._entry)!r}: file "
                    + (f"ended {rem} bytes before" if not n else "goes on past")
                    + " the size in its header (changed while being read?)"
                )
            p += n
            rem -= n
        self._pos = p
        self._remaining = 0
        self._end_data()
        return reads

    def add_file(
        self,
        name: bytes,
        data: bytes | bytearray | memoryview,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        xattrs: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Write a regular file from memory (header, data and padding)."""
        size = memoryview(data).nbytes
        self.add_header(name, REGTYPE, mode, uid, gid, mtime, size, xattrs=xattrs)
        self.write(data)

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks) and flush everything to the sink."""
        if self._closed:
            return
        if self._remaining:
            self._unexpected()
        self._put(_ZEROS)
        self._flush()
        self._closed = True

    # -- internals ---------------------------------------------------------------------------

    def _end_data(self) -> None:
        pad = self._pad
        if pad:
            p = self._pos
            if p + pad > self._cap:
                self._flush()
                p = 0
            self._mv[p : p + pad] = _ZEROS[:pad]
            self._pos = p + pad

    def _put(self, data: bytes) -> None:
        n = len(data)
        p = self._pos
        if p + n > self._cap:
            self._flush()
            p = 0
            if n > self._cap:
                self._sink.write(data)
                self._flushed += n
                return
        self._mv[p : p + n] = data
        self._pos = p + n

    def _flush(self) -> None:
        p = self._pos
        if p:
            self._sink.write(self._mv[:p])
            self._flushed += p
            self._pos = 0

    def _unexpected(self) -> None:
        if self._closed:
            raise FailedPrecondition("tar writer: already closed")
        raise FailedPrecondition(
            f"tar entry {display(self._entry)!r}: {self._remaining} bytes of data missing"
        )
