"""gzip backend: a block-parallel, deterministic gzip writer and a checked gzip reader.

Theory of operation
-------------------
The input is cut into blocks of exactly :data:`BLOCK_SIZE` (1 MiB) uncompressed bytes, counted
from the start of the stream, whatever sizes the caller passes to ``compress()``. Each block is
deflated on its own, primed with the last 32 KiB of the previous block as preset dictionary, and
ended with a sync flush (an empty stored block), as pigz does. Because a block's output depends
only on its bytes, the previous 32 KiB and the level, blocks can be compressed by any number of
worker threads and concatenated in order; the stream ends with a fixed final empty block
(``03 00``) and the CRC-32/size trailer. The result is **one** gzip member that every gzip reader
accepts (``gzip -d``, ``pigz -d``, Go's ``compress/gzip``, Python's ``gzip``).

Header: ``1f 8b 08``, no flags (no name, no comment), MTIME 0, XFL 0, OS 255 ("unknown"), the
same header as Go's ``compress/gzip`` (BuildKit, containerd).

Implementations by level (the *encoder*, recorded in blob labels):

========  =============================================  =======================================
level     implementation                                 note
========  =============================================  =======================================
0         zlib-ng level 0 (stored blocks)                no compression, still valid gzip
1-3       ISA-L (``isal``) levels 1-3                    3 is the default: a little larger
                                                         than gzip -6, much faster than zlib
                                                         (figures in BENCHMARKS.md)
4-9       zlib-ng levels 4-9                             slower; for smaller output
========  =============================================  =======================================

Without ``isal`` every level uses zlib-ng, and without ``zlib_ng`` the standard library's zlib;
the encoder string says which ran.

**Reproducibility promise.** For the same input bytes and level, the output is byte-identical
for every thread count and every way of splitting the input into ``compress()`` calls, as long as
the encoder string is the same (same implementation, same library version, same
:data:`BLOCK_SIZE`). Different encoders produce different, equally valid, gzip streams. One
exception makes the world's digests match: an input of exactly 1024 zero bytes (the empty tar
stream) always compresses to BuildKit's well-known 32-byte blob
``sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1`` (encoder
``builtin:empty-layer``), at every level.

Threads: workers are started lazily (not at all for inputs under one block) and at most
``2 * threads`` blocks are in flight, so memory stays under ~``4 * threads`` MiB.

Reading: :func:`gzip_reader` decodes on a helper thread (:class:`_ThreadedGzipReader`): the
ISA-L / zlib-ng / zlib decoders release the GIL, so decompression runs beside the consumer's
Python work (the layer applier) instead of in series with it; a bounded queue of 1 MiB chunks
keeps memory flat. Every member is decoded (concatenated members, as pigz writes them; zero
padding after the last one is ignored), the trailer's CRC-32 and length are checked, and
truncated, corrupt or trailing-garbage input is an error naming the stream.
"""

from __future__ import annotations

import gzip as _stdgzip
import hashlib
import io
import queue
import struct
import threading
import zlib as _stdzlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from ..errors import DigestMismatch, Error, FailedPrecondition, InvalidArgument
from . import Buffer, Compression, os_error

try:
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    _isal_zlib = None  # type: ignore[assignment]
    _igzip = None  # type: ignore[assignment]
try:
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - zlib-ng is a declared dependency
    _zlib_ng = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "BLOCK_SIZE",
    "EMPTY_LAYER_DIFF_ID",
    "EMPTY_LAYER_DIGEST",
    "EMPTY_LAYER_GZIP",
    "EMPTY_TAR",
    "GzipCompressor",
    "encoder_for",
    "gzip_reader",
    "gzip_reader_inline",
]

BLOCK_SIZE = 1 << 20
_WINDOW = 1 << 15
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_EMPTY_BLOCK = b"\x03\x00"
_OUT_BUFFER = BLOCK_SIZE + BLOCK_SIZE // 10 + 1024
#: The empty tar stream: two 512-byte zero blocks.
EMPTY_TAR = bytes(1024)
#: BuildKit's gzip of :data:`EMPTY_TAR` (Go ``compress/gzip``), exporter spec section 2.3.
EMPTY_LAYER_GZIP = bytes.fromhex("1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000")
EMPTY_LAYER_DIGEST = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
_EMPTY_ENCODER = "builtin:empty-layer"


class _Parallel(Protocol):
    def compress_and_crc(self, data: Buffer, zdict: Buffer, /) -> tuple[bytes, int]: ...


def _impl(level: int) -> str:
    if 1 <= level <= 3 and _isal_zlib is not None:
        return "isal"
    if _zlib_ng is not None:
        return "zlib-ng"
    return "zlib"  # pragma: no cover - only without zlib-ng


def _version(impl: str) -> str:
    if impl == "isal":
        import isal

        return str(isal.__version__)
    if impl == "zlib-ng":
        import zlib_ng

        return str(zlib_ng.__version__)
    return _stdzlib.ZLIB_RUNTIME_VERSION  # pragma: no cover


def encoder_for(level: int) -> str:
    """The encoder string for ``level``: implementation, library version and block size."""
    impl = _impl(level)
    return f"{impl}-{_version(impl)};block={BLOCK_SIZE >> 20}MiB"


_local = threading.local()


def _parallel(impl: str, level: int) -> _Parallel:
    """A per-thread reusable block compressor (it owns a ~1.1 MiB output buffer)."""
    cache: dict[tuple[str, int], _Parallel] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    pc = cache.get((impl, level))
    if pc is None:
        mod = _isal_zlib if impl == "isal" else _zlib_ng
        pc = mod._ParallelCompress(buffersize=_OUT_BUFFER, level=level)
        cache[(impl, level)] = pc
    return pc


def _deflate_block(impl: str, level: int, block: bytes, zdict: bytes) -> tuple[bytes, int]:
    """Raw deflate of one block primed with ``zdict``, ending in a sync flush (not final), and
    the CRC-32 of the block (computed by the same pass in isal and zlib-ng)."""
    if impl == "zlib":  # pragma: no cover - only without zlib-ng
        c = (
            _stdzlib.compressobj(level, _stdzlib.DEFLATED, -15, zdict=zdict)
            if zdict
            else _stdzlib.compressobj(level, _stdzlib.DEFLATED, -15)
        )
        return c.compress(block) + c.flush(_stdzlib.Z_SYNC_FLUSH), _stdzlib.crc32(block)
    return _parallel(impl, level).compress_and_crc(block, zdict)


def _crc32_combine(crc: int, block: bytes, block_crc: int) -> int:
    """The stream's CRC-32 extended by ``block``, given the block's own CRC-32."""
    if _isal_zlib is not None:
        return int(_isal_zlib.crc32_combine(crc, block_crc, len(block)))
    if _zlib_ng is not None:  # pragma: no cover - isal is a declared dependency
        return int(_zlib_ng.crc32_combine(crc, block_crc, len(block)))
    return _stdzlib.crc32(block, crc)  # pragma: no cover - the stdlib has no combine


class GzipCompressor:
    """Streaming deterministic gzip writer (see the module docstring); one feeding thread."""

    compression = Compression.GZIP

    def __init__(self, level: int, *, threads: int = 1) -> None:
        if not 0 <= level <= 9:
            raise InvalidArgument(f"compression level {level}: gzip levels are 0-9")
        self.level = level
        self._impl = _impl(level)
        self._encoder = encoder_for(level)
        self._threads = max(1, threads)
        self._max_inflight = 2 * self._threads
        self._pending = bytearray()
        self._tail = b""
        self._crc = 0
        self._size = 0
        self._blocks = 0
        self._header_sent = False
        self._empty_layer = False
        self._ready: list[bytes] = []
        self._inflight: deque[tuple[Future[tuple[bytes, int]], bytes]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def encoder(self) -> str:
        return _EMPTY_ENCODER if self._empty_layer else self._encoder

    @property
    def threads(self) -> int:
        return self._threads

    def _error(self, exc: BaseException) -> Error:
        if isinstance(exc, Error):
            return exc
        if isinstance(exc, OSError) and exc.errno is not None:
            return os_error(f"gzip compressor {self._encoder}", exc)
        return FailedPrecondition(f"gzip compressor {self._encoder}: {exc}")

    def _submit(self, block: bytes) -> None:
        # the CRC-32 of the stream is combined from the workers' block CRCs, in order
        self._size += len(block)
        self._blocks += 1
        zdict, self._tail = self._tail, block[-_WINDOW:]
        if self._threads == 1:
            try:
                out, crc = _deflate_block(self._impl, self.level, block, zdict)
            except Exception as exc:
                raise self._error(exc) from exc
            self._crc = _crc32_combine(self._crc, block, crc)
            self._ready.append(out)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="pallet-gzip")
        fut = self._pool.submit(_deflate_block, self._impl, self.level, block, zdict)
        self._inflight.append((fut, block))
        while len(self._inflight) > self._max_inflight:
            self._collect_head()

    def _collect_head(self) -> None:
        fut, block = self._inflight.popleft()
        try:
            out, crc = fut.result()
        except Exception as exc:
            raise self._error(exc) from exc
        self._crc = _crc32_combine(self._crc, block, crc)
        self._ready.append(out)

    def _take_ready(self) -> bytes:
        if not self._ready:
            return b""
        parts = self._ready
        if not self._header_sent:
            parts.insert(0, _HEADER)
            self._header_sent = True
        out = b"".join(parts)
        self._ready = []
        return out

    def _split(self, data: Buffer) -> None:
        """Cut ``data`` into blocks counted from the stream's start, keeping the remainder."""
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        pending = self._pending
        if pending:
            need = BLOCK_SIZE - len(pending)
            pending += mv[:need]
            mv = mv[need:]
            if len(pending) == BLOCK_SIZE:
                block = bytes(pending)
                pending.clear()
                self._submit(block)
        while len(mv) >= BLOCK_SIZE:
            self._submit(bytes(mv[:BLOCK_SIZE]))
            mv = mv[BLOCK_SIZE:]
        if mv:
            pending += mv

    def compress(self, data: Buffer, /) -> bytes:
        """Feed ``data``; returns compressed bytes that are ready (maybe ``b""``)."""
        if self._closed:
            raise FailedPrecondition(f"gzip compressor {self._encoder}: already closed")
        if not self._pending and type(data) is bytes and len(data) == BLOCK_SIZE:
            self._submit(data)  # a whole block as an immutable object: no copy
        else:
            self._split(data)
        while self._inflight and self._inflight[0][0].done():
            self._collect_head()
        return self._take_ready()

    def flush(self) -> bytes:
        """End the stream: the remaining blocks, the final block and the trailer."""
        if self._closed:
            raise FailedPrecondition(f"gzip compressor {self._encoder}: already closed")
        try:
            if self._blocks == 0 and self._pending == EMPTY_TAR:
                self._empty_layer = True
                self._size = len(EMPTY_TAR)
                return EMPTY_LAYER_GZIP
            if self._pending:
                block = bytes(self._pending)
                self._pending.clear()
                self._submit(block)
            while self._inflight:
                self._collect_head()
            self._ready.append(_FINAL_EMPTY_BLOCK)
            self._ready.append(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
            return self._take_ready()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers; the stream is abandoned unless ``flush`` ran."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        self._inflight.clear()
        self._pending = bytearray()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _CheckedGzipReader(io.RawIOBase):
    """Raw reader over a gzip decoder that turns its exceptions into pallet errors."""

    def __init__(self, inner: BinaryIO, name: str) -> None:
        super().__init__()
        self._inner = inner
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        try:
            return self._inner.readinto(b)  # type: ignore[attr-defined,no-any-return]
        except EOFError as exc:
            raise InvalidArgument(f"{self._name}: gzip data truncated ({exc})") from exc
        except _stdgzip.BadGzipFile as exc:
            msg = str(exc)
            if "CRC check failed" in msg or "Incorrect length" in msg:
                raise DigestMismatch(f"{self._name}: gzip {msg}") from exc
            raise InvalidArgument(f"{self._name}: invalid gzip data ({msg})") from exc
        except OSError as exc:
            if exc.errno is not None:
                raise os_error(self._name, exc) from exc
            raise InvalidArgument(f"{self._name}: invalid gzip data ({exc})") from exc
        except _ZLIB_ERRORS as exc:
            raise InvalidArgument(f"{self._name}: invalid gzip data ({exc})") from exc

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _zlib_errors() -> tuple[type[Exception], ...]:
    errs: list[type[Exception]] = [_stdzlib.error]
    if _isal_zlib is not None:
        errs.append(cast("type[Exception]", _isal_zlib.error))
        errs.append(cast("type[Exception]", _isal_zlib.IsalError))
    if _zlib_ng is not None:
        errs.append(cast("type[Exception]", _zlib_ng.error))
    return tuple(errs)


_ZLIB_ERRORS = _zlib_errors()


_READ_CHUNK = 1 << 20  # compressed bytes read at once
_OUT_CHUNK = 1 << 20  # decompressed bytes produced at once (bounds memory at any ratio)
_QUEUE_CHUNKS = 4
_EOF = object()


class _ThreadedGzipReader(io.RawIOBase):
    """gzip members decoded on a helper thread; see the module docstring."""

    def __init__(self, src: BinaryIO, name: str) -> None:
        super().__init__()
        self._src = src
        self._name = name
        self._q: queue.Queue[object] = queue.Queue(_QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._sha256 = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="pallet-gunzip", daemon=True)
        self._thread.start()

    # -- the helper thread ---------------------------------------------------------------------
    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _error(self, exc: Exception) -> Error:
        msg = str(exc)
        low = msg.lower()
        if "checksum" in low or "data check" in low or "length check" in low:
            return DigestMismatch(f"{self._name}: gzip CRC or length check failed ({msg})")
        return InvalidArgument(f"{self._name}: invalid gzip data ({msg})")

    def _run(self) -> None:
        mod: object = _isal_zlib or _zlib_ng or _stdzlib
        new = mod.decompressobj  # type: ignore[attr-defined]
        try:
            d = new(31)
            pending = False  # a member has started and not ended
            while not self._stop.is_set():
                data = self._src.read(_READ_CHUNK)
                if not data:
                    break
                while data:
                    if not pending:
                        data = data.lstrip(b"\0")  # zero padding between/after members
                        if not data:
                            break
                        pending = True
                    try:
                        out = d.decompress(data, _OUT_CHUNK)
                    except _ZLIB_ERRORS as exc:
                        raise self._error(exc) from exc
                    if out:
                        self._sha256.update(out)
                        if not self._put(out):
                            return
                    if d.eof:
                        data = d.unused_data
                        d = new(31)
                        pending = False
                    else:
                        data = d.unconsumed_tail
            if pending:
                raise InvalidArgument(f"{self._name}: gzip data truncated")
            self._put(_EOF)
        except Error as exc:
            self._put(exc)
        except OSError as exc:
            self._put(os_error(self._name, exc))
        except BaseException as exc:  # pragma: no cover - reported to the reader
            self._put(exc)

    # -- the reader ----------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def stream_sha256(self) -> str:
        """sha256 (hex) of every decompressed byte, hashed on the helper thread.

        Raises:
            FailedPrecondition: the stream has not been read to its end.
        """
        if not self._eof:
            raise FailedPrecondition(f"{self._name}: digest asked before the end of the stream")
        return self._sha256.hexdigest()

    def readinto(self, b: WriteableBuffer) -> int:
        mv = memoryview(b).cast("B")
        while self._pos >= len(self._chunk):
            if self._eof:
                return 0
            item = self._q.get()
            if item is _EOF:
                self._eof = True
                return 0
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._chunk = memoryview(cast(bytes, item))
            self._pos = 0
        n = min(len(mv), len(self._chunk) - self._pos)
        mv[:n] = self._chunk[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while True:  # unblock the helper
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
            self._thread.join()
        super().close()


def gzip_reader(src: BinaryIO, *, name: str = "stream") -> BinaryIO:
    """Decompress every gzip member of ``src`` (bounded memory; does not close ``src``)."""
    return io.BufferedReader(_ThreadedGzipReader(src, name), buffer_size=1 << 17)


def gzip_reader_inline(src: BinaryIO, *, name: str = "stream") -> BinaryIO:
    """:func:`gzip_reader` on the calling thread (``IGzipFile``), for comparison."""
    inner: BinaryIO
    if _igzip is not None:
        inner = cast(BinaryIO, _igzip.IGzipFile(fileobj=src, mode="rb"))  # type: ignore[no-untyped-call]
    else:  # pragma: no cover - isal is a declared dependency
        inner = cast(BinaryIO, _stdgzip.GzipFile(fileobj=src, mode="rb"))
    return io.BufferedReader(_CheckedGzipReader(inner, name), buffer_size=1 << 17)
