"""Layer compression: kinds, detection, streaming compressors and decompressing readers.

Theory of operation
-------------------
A layer blob is a tar stream, either as is (``uncompressed``), in gzip or in zstd. This package
owns three things:

* **Detection** by magic bytes (:func:`detect`), never by media type alone: gzip starts with
  ``1f 8b``, a zstd frame with ``28 b5 2f fd`` (a skippable frame, ``5? 2a 4d 18``, counts as zstd
  too). bzip2 and xz are recognised only to be refused with :class:`~pallet.errors.Unsupported`.
  Anything else is an uncompressed tar stream.
* **Decompression** as a bounded-memory stream (:func:`decompressed_reader`). Truncated or corrupt
  input raises :class:`~pallet.errors.InvalidArgument` (``DigestMismatch`` for a failed gzip CRC
  or zstd checksum) instead of the libraries' own exceptions, and a truncated zstd stream is
  detected even where ``zstandard`` would silently return a short result.
* **Compression** by a :class:`Compressor`: an incremental object fed with ``compress(data)``
  (returns whatever output is ready, possibly ``b""``) and ended with ``flush()``. Backends live in
  :mod:`.gzip` (ISA-L and zlib-ng, block-parallel) and :mod:`.zstd` (libzstd through
  ``zstandard``). Each backend module's docstring states its reproducibility promise: for a fixed
  library version and level the bytes never depend on the thread count or on how the input is
  split into ``compress()`` calls.

Levels use each format's usual scale: gzip 0-9 (default 3, the best ISA-L level: layers a little
larger than umoci's pgzip and ``pigz -6`` make, in much less time; figures in BENCHMARKS.md) and
zstd 0-22 (0 means libzstd's default, 3).
``uncompressed`` has level 0 and ignores any level given. :func:`normalize_level` maps a request
to the canonical level that labels and caches record.

The one-pass layer pipeline (tar -> diffID -> compressor -> digest -> content store) is in
:mod:`pallet.compression.pipeline`.
"""

from __future__ import annotations

import enum
import errno
import io
import os
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeAlias

from ..errors import Error, FailedPrecondition, InvalidArgument, NotFound, Unavailable, Unsupported
from ..oci import mediatypes

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: What compressors and sinks accept.
Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = [
    "GZIP_LEVELS",
    "SNIFF_SIZE",
    "ZSTD_LEVELS",
    "Buffer",
    "Compression",
    "Compressor",
    "compressor",
    "decompressed_reader",
    "default_level",
    "default_threads",
    "detect",
    "from_media_type",
    "media_type",
    "normalize_level",
    "os_error",
]

GZIP_LEVELS = range(0, 10)
ZSTD_LEVELS = range(0, 23)

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"
#: Bytes :func:`detect` needs to decide (the longest magic).
SNIFF_SIZE = 10


class Compression(enum.StrEnum):
    """How a layer's tar stream is encoded."""

    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    ZSTD = "zstd"


def _is_zstd_skippable(prefix: bytes) -> bool:
    return len(prefix) >= 4 and prefix[1:4] == b"\x2a\x4d\x18" and prefix[0] & 0xF0 == 0x50


def detect(prefix: bytes) -> Compression:
    """Return the compression of a stream that starts with ``prefix``.

    Give at least :data:`SNIFF_SIZE` bytes when the stream has them (fewer are fine for short
    streams: a prefix that is too short to hold a magic is uncompressed).

    Raises:
        Unsupported: the stream is bzip2 or xz, which layers may not use here.
    """
    if prefix.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if prefix.startswith(_ZSTD_MAGIC) or _is_zstd_skippable(prefix):
        return Compression.ZSTD
    if prefix.startswith(_XZ_MAGIC):
        raise Unsupported("compressed stream xz: only gzip and zstd layers are supported")
    if (
        prefix.startswith(_BZIP2_MAGIC)
        and len(prefix) >= 10
        and prefix[3:4].isdigit()
        and prefix[4:10] == b"1AY&SY"
    ):
        raise Unsupported("compressed stream bzip2: only gzip and zstd layers are supported")
    return Compression.UNCOMPRESSED


def default_level(c: Compression) -> int:
    """The level used when none is asked for (0 for uncompressed)."""
    c = Compression(c)
    if c is Compression.GZIP:
        return 3
    if c is Compression.ZSTD:
        return 3
    return 0


def normalize_level(c: Compression, level: int | None) -> int:
    """Validate ``level`` for ``c`` and return the canonical level (the one labels record).

    ``None`` means :func:`default_level`; zstd 0 is libzstd's default (3); uncompressed is 0.

    Raises:
        InvalidArgument: the level is not an int or out of range for the format.
    """
    c = Compression(c)
    if level is None:
        return default_level(c)
    if not isinstance(level, int) or isinstance(level, bool):
        raise InvalidArgument(f"compression level {level!r}: not an integer")
    if c is Compression.UNCOMPRESSED:
        return 0
    if c is Compression.GZIP:
        if level not in GZIP_LEVELS:
            raise InvalidArgument(f"compression level {level}: gzip levels are 0-9")
        return level
    if level not in ZSTD_LEVELS:
        raise InvalidArgument(f"compression level {level}: zstd levels are 0-22")
    return level or default_level(c)


def media_type(c: Compression, *, oci: bool = True) -> str:
    """Layer media type for ``c`` in the OCI (default) or Docker schema 2 family."""
    c = Compression(c)
    if oci:
        return {
            Compression.UNCOMPRESSED: mediatypes.OCI_LAYER,
            Compression.GZIP: mediatypes.OCI_LAYER_GZIP,
            Compression.ZSTD: mediatypes.OCI_LAYER_ZSTD,
        }[c]
    return {
        Compression.UNCOMPRESSED: mediatypes.DOCKER_LAYER,
        Compression.GZIP: mediatypes.DOCKER_LAYER_GZIP,
        Compression.ZSTD: mediatypes.DOCKER_LAYER_ZSTD,
    }[c]


def from_media_type(mt: str) -> Compression:
    """Compression named by a layer media type (``+gzip``, ``.tar.gzip``, ``+zstd``...)."""
    return Compression(mediatypes.compression_of(mt))


def default_threads() -> int:
    """Compression threads to use when the caller does not say: the CPUs this process may use."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, n)


class Compressor(Protocol):
    """One compressed stream, fed from a single thread.

    ``compress`` may return ``b""`` while it buffers (or while worker threads are busy), and
    blocks when too much work is in flight, so memory stays bounded. ``flush`` ends the stream
    and returns the rest; the object is unusable afterwards. ``close`` releases worker threads
    without finishing the stream (after an error); it is idempotent and ``flush`` calls it.
    """

    @property
    def compression(self) -> Compression: ...
    @property
    def level(self) -> int: ...
    @property
    def encoder(self) -> str:
        """Which implementation and parameters made the bytes (recorded in blob labels)."""
        ...

    def compress(self, data: Buffer, /) -> bytes: ...
    def flush(self) -> bytes: ...
    def close(self) -> None: ...


class _Identity:
    """The "compressor" of uncompressed layers: output is the input."""

    compression = Compression.UNCOMPRESSED
    level = 0
    encoder = "identity"

    def compress(self, data: Buffer, /) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


def compressor(c: Compression, level: int | None = None, *, threads: int = 1) -> Compressor:
    """A new streaming compressor for ``c`` at ``level`` (see :func:`normalize_level`).

    ``threads`` is the number of compression worker threads (at least 1). It never changes the
    output bytes, only the speed.

    Raises:
        InvalidArgument: bad level or thread count.
    """
    c = Compression(c)
    lvl = normalize_level(c, level)
    if not isinstance(threads, int) or threads < 1:
        raise InvalidArgument(f"compression threads {threads!r}: must be at least 1")
    if c is Compression.GZIP:
        from .gzip import GzipCompressor

        return GzipCompressor(lvl, threads=threads)
    if c is Compression.ZSTD:
        from .zstd import ZstdCompressor

        return ZstdCompressor(lvl, threads=threads)
    return _Identity()


class _Prefixed(io.RawIOBase):
    """Replays bytes already read from ``src`` before reading on (for non-seekable sources)."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        out = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(out), len(self._prefix))
            out[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        src_readinto = getattr(self._src, "readinto", None)
        if src_readinto is not None:
            got = src_readinto(out)
            return int(got or 0)
        data = self._src.read(len(out))
        out[: len(data)] = data
        return len(data)


def _read_prefix(src: BinaryIO) -> tuple[bytes, BinaryIO]:
    """Read up to :data:`SNIFF_SIZE` bytes and return them with a reader of the whole stream."""
    pos: int | None = None
    try:
        if src.seekable():
            pos = src.tell()
    except (OSError, ValueError):
        pos = None
    buf = b""
    while len(buf) < SNIFF_SIZE:
        chunk = src.read(SNIFF_SIZE - len(buf))
        if not chunk:
            break
        buf += chunk
    if pos is not None:
        src.seek(pos)
        return buf, src
    return buf, io.BufferedReader(_Prefixed(buf, src))


def decompressed_reader(src: BinaryIO, *, name: str = "stream") -> BinaryIO:
    """A reader of the uncompressed bytes of ``src`` (gzip, zstd or uncompressed, sniffed).

    Memory stays bounded whatever the ratio. ``name`` names the stream in error messages
    (``blob sha256:...``). The returned reader does not close ``src``.

    Raises (from reads):
        InvalidArgument: truncated or corrupt compressed data.
        DigestMismatch: a gzip CRC or zstd content checksum does not match.
        Unsupported: bzip2/xz input (raised here, before any read).
    """
    prefix, stream = _read_prefix(src)
    kind = detect(prefix)
    if kind is Compression.GZIP:
        from .gzip import gzip_reader

        return gzip_reader(stream, name=name)
    if kind is Compression.ZSTD:
        from .zstd import zstd_reader

        return zstd_reader(stream, name=name)
    return stream


def os_error(noun: str, exc: OSError) -> Error:
    """Translate an OSError met while handling ``noun`` (``blob sha256:...``) to a pallet error."""
    what = exc.strerror or str(exc)
    msg = f"{noun}: {what}"
    if exc.errno == errno.ENOENT:
        return NotFound(msg)
    if exc.errno in (errno.EAGAIN, errno.EBUSY, errno.EINTR):
        return Unavailable(msg)
    return FailedPrecondition(msg)
