"""zstd backend (libzstd through ``zstandard``): a deterministic writer and a checked reader.

Theory of operation
-------------------
Writing always uses libzstd's multi-threaded mode (``nbWorkers = threads >= 1``), even for one
thread: in that mode libzstd cuts the input into jobs by size alone, so the output does not depend
on the number of workers nor on how the input is split into ``compress()`` calls, and the
compression runs on libzstd's own threads, overlapping with the thread that feeds it. (The
single-threaded mode, ``nbWorkers = 0``, produces different bytes and is never used.)

Frame parameters, fixed:

* one frame, ``write_checksum=True``: the 4-byte XXH64 content checksum that ``zstd`` (the CLI)
  and containerd's encoder also write, so readers detect corruption;
* ``write_content_size=False``: the stream is compressed before its size is known, and leaving
  the size out keeps the bytes identical whether or not a caller could have known it (a layer
  converted from a stored blob and the same layer streamed from a directory get the same digest);
* no dictionary, no dictionary ID;
* job size fixed at twice the level's window (4 MiB at level 3) instead of libzstd's default:
  it cuts peak memory for slightly larger output and no speed change (figures in BENCHMARKS.md),
  and it keeps the job boundaries (part of the output) independent of libzstd's default tuning;
* the stream ends with a block flush, then the frame end (an empty last block, 3 bytes). Ending
  with the frame end alone is racy in libzstd's multi-threaded mode: when the input length is a
  multiple of the job size, whether the last data job is marked "last" (or followed by an empty
  last block) depends on whether a worker picked it up before the end was requested, so two runs
  can differ by those 3 bytes (seen with libzstd 1.5.7 at level 1 and 48 MiB of input). The
  explicit flush always closes the last data job first, so the frame always ends the same way.

**Reproducibility promise.** Same input bytes, same level and same libzstd version (the encoder
string, ``libzstd-<version>;job=2xwindow``) give the same bytes for every thread count and
input split.

Reading: ``zstandard``'s stream reader decodes (bounded memory, checksums verified) but returns a
short result without error when the input is truncated. :class:`_FrameTracker` therefore follows
the frame structure of the compressed bytes as they are read (frame header, block headers,
checksum, skippable frames) without decoding them, and the reader raises
:class:`~pallet.errors.InvalidArgument` when the input ends anywhere but on a frame boundary.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, BinaryIO, cast

import zstandard

from ..errors import DigestMismatch, Error, FailedPrecondition, InvalidArgument
from . import Buffer, Compression, os_error

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ZstdCompressor", "encoder", "zstd_reader"]

_ZSTD_MAGIC = 0xFD2FB528


def encoder() -> str:
    """``libzstd-<version>;job=2xwindow``: the library and job sizing the promise covers."""
    return "libzstd-" + ".".join(str(x) for x in zstandard.ZSTD_VERSION) + ";job=2xwindow"


class ZstdCompressor:
    """Streaming zstd writer (see the module docstring); one feeding thread."""

    compression = Compression.ZSTD

    def __init__(self, level: int, *, threads: int = 1) -> None:
        if not 1 <= level <= 22:
            raise InvalidArgument(f"compression level {level}: zstd levels are 1-22")
        self.level = level
        self._threads = max(1, threads)
        self._encoder = encoder()
        window_log = zstandard.ZstdCompressionParameters.from_level(level).window_log
        params = zstandard.ZstdCompressionParameters.from_level(
            level,
            threads=self._threads,
            job_size=1 << (window_log + 1),
            write_checksum=True,
            write_content_size=False,
            write_dict_id=False,
        )
        cctx = zstandard.ZstdCompressor(compression_params=params)
        self._obj: zstandard.ZstdCompressionObj | None = cctx.compressobj()

    @property
    def encoder(self) -> str:
        return self._encoder

    @property
    def threads(self) -> int:
        return self._threads

    def _error(self, exc: Exception) -> Error:
        if isinstance(exc, OSError) and exc.errno is not None:
            return os_error(f"zstd compressor {self._encoder}", exc)
        return FailedPrecondition(f"zstd compressor {self._encoder} level {self.level}: {exc}")

    def compress(self, data: Buffer, /) -> bytes:
        if self._obj is None:
            raise FailedPrecondition(f"zstd compressor {self._encoder}: already closed")
        try:
            return self._obj.compress(data)
        except (zstandard.ZstdError, OSError, MemoryError) as exc:
            raise self._error(exc) from exc

    def flush(self) -> bytes:
        if self._obj is None:
            raise FailedPrecondition(f"zstd compressor {self._encoder}: already closed")
        try:
            out = self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            return out + self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
        except (zstandard.ZstdError, OSError, MemoryError) as exc:
            raise self._error(exc) from exc
        finally:
            self.close()

    def close(self) -> None:
        self._obj = None


# Frame tracker phases.
_MAGIC, _FHD, _SKIP_HEADER, _BLOCK_HEADER, _BLOCK_BODY, _CHECKSUM, _SKIPPABLE_SIZE, _SKIP = range(8)


class _FrameTracker(io.RawIOBase):
    """Pass-through reader that follows zstd frame boundaries in the compressed bytes."""

    def __init__(self, src: BinaryIO) -> None:
        super().__init__()
        self._src = src
        self.frames = 0
        self.bad: str | None = None
        self._phase = _MAGIC
        self._field = bytearray()  # small fixed-size field being collected
        self._skip = 0  # bytes left to pass in a skipping phase
        self._checksum = False
        self.offset = 0

    def readable(self) -> bool:
        return True

    @property
    def at_boundary(self) -> bool:
        return self._phase == _MAGIC and not self._field

    def readinto(self, b: WriteableBuffer) -> int:
        out = memoryview(b).cast("B")
        readinto = getattr(self._src, "readinto", None)
        if readinto is not None:
            n = int(readinto(out) or 0)
        else:
            data = self._src.read(len(out))
            n = len(data)
            out[:n] = data
        if n and self.bad is None:
            self._track(out[:n])
        self.offset += n
        return n

    def _need(self, mv: memoryview, i: int, size: int) -> tuple[int, int | None]:
        """Collect a ``size``-byte little-endian field; returns (new index, its value once
        complete, else None)."""
        take = min(size - len(self._field), len(mv) - i)
        self._field += mv[i : i + take]
        if len(self._field) < size:
            return i + take, None
        value = int.from_bytes(self._field, "little")
        self._field.clear()
        return i + take, value

    def _track(self, mv: memoryview) -> None:
        i, n = 0, len(mv)
        while i < n and self.bad is None:
            ph = self._phase
            if ph in (_SKIP_HEADER, _BLOCK_BODY, _CHECKSUM, _SKIP):
                take = min(self._skip, n - i)
                i += take
                self._skip -= take
                if self._skip:
                    continue
                if ph == _SKIP_HEADER or (ph == _BLOCK_BODY and not self._last_block):
                    self._phase = _BLOCK_HEADER
                elif ph == _BLOCK_BODY and self._checksum:
                    self._phase, self._skip = _CHECKSUM, 4
                else:
                    self._end_frame()
                continue
            if ph == _MAGIC:
                i, magic = self._need(mv, i, 4)
                if magic is None:
                    continue
                if magic == _ZSTD_MAGIC:
                    self._phase = _FHD
                elif magic & 0xFFFFFFF0 == 0x184D2A50:
                    self._phase = _SKIPPABLE_SIZE
                else:
                    self.bad = f"unknown frame magic {magic:#010x} at frame {self.frames}"
            elif ph == _FHD:
                fhd = mv[i]
                i += 1
                single = bool(fhd & 0x20)
                if fhd & 0x08:
                    self.bad = "reserved bit set in frame header"
                    continue
                self._checksum = bool(fhd & 0x04)
                did = (0, 1, 2, 4)[fhd & 0x03]
                fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
                self._skip = (0 if single else 1) + did + fcs
                self._phase = _SKIP_HEADER
                if self._skip == 0:
                    self._phase = _BLOCK_HEADER
            elif ph == _BLOCK_HEADER:
                i, bh = self._need(mv, i, 3)
                if bh is None:
                    continue
                self._last_block = bool(bh & 1)
                btype = (bh >> 1) & 3
                if btype == 3:
                    self.bad = "reserved block type"
                    continue
                self._skip = 1 if btype == 1 else bh >> 3
                self._phase = _BLOCK_BODY
                if self._skip == 0:
                    self._track_empty_body()
            elif ph == _SKIPPABLE_SIZE:
                i, size = self._need(mv, i, 4)
                if size is None:
                    continue
                self._skip = size
                self._phase = _SKIP
                if self._skip == 0:
                    self._phase = _MAGIC
                    self.frames += 1

    _last_block = False

    def _track_empty_body(self) -> None:
        if not self._last_block:
            self._phase = _BLOCK_HEADER
        elif self._checksum:
            self._phase, self._skip = _CHECKSUM, 4
        else:
            self._end_frame()

    def _end_frame(self) -> None:
        self.frames += 1
        self._phase = _MAGIC


class _CheckedZstdReader(io.RawIOBase):
    """Decodes with zstandard and checks, at EOF, that the input ended on a frame boundary."""

    def __init__(self, src: BinaryIO, name: str) -> None:
        super().__init__()
        self._name = name
        self._tracker = _FrameTracker(src)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], self._tracker), read_across_frames=True, closefd=False
        )

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        try:
            n = self._reader.readinto(b)
        except zstandard.ZstdError as exc:
            msg = str(exc)
            if "checksum" in msg:
                raise DigestMismatch(f"{self._name}: zstd {msg}") from exc
            raise InvalidArgument(f"{self._name}: invalid zstd data ({msg})") from exc
        except OSError as exc:
            if exc.errno is not None:
                raise os_error(self._name, exc) from exc
            raise InvalidArgument(f"{self._name}: invalid zstd data ({exc})") from exc
        if n == 0:
            t = self._tracker
            if t.bad is not None:
                raise InvalidArgument(f"{self._name}: invalid zstd data ({t.bad})")
            if not t.at_boundary or t.frames == 0:
                raise InvalidArgument(
                    f"{self._name}: zstd data truncated (input ended inside frame "
                    f"{t.frames} at byte {t.offset})"
                )
        return int(n)

    def close(self) -> None:
        if not self.closed:
            self._reader.close()  # type: ignore[no-untyped-call]
        super().close()


def zstd_reader(src: BinaryIO, *, name: str = "stream") -> BinaryIO:
    """Decompress every zstd frame of ``src`` (bounded memory; does not close ``src``)."""
    return io.BufferedReader(_CheckedZstdReader(src, name), buffer_size=1 << 17)
