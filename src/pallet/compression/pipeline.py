"""The one-pass layer pipeline and the compressed-variant cache.

Theory of operation
-------------------
:func:`write_layer` turns an uncompressed tar stream into a layer blob in a content store in one
pass, without ever holding a whole layer in memory::

    produce(sink) --1 MiB chunks--> [bounded queue] --> consumer thread:
        sha256 (diffID) -> compressor (worker threads) -> sha256 (digest) -> store writer

* ``produce`` runs on the calling thread and writes the tar stream with ``sink.write()``. The sink
  gathers small writes into ~1 MiB chunks and hands them to a queue of :data:`QUEUE_CHUNKS` chunks,
  so the producer (Python code holding the GIL: tar headers, file reads) and the consumer (hashing,
  compression, store writes: C code that releases the GIL) overlap, and memory stays flat: the
  queue, the compressor's in-flight blocks (``2 * threads`` MiB for gzip, libzstd's job buffers for
  zstd) and nothing else.
* The consumer hashes the uncompressed bytes (the diffID), feeds the compressor and appends its
  output to the content-store writer, whose ``digest()`` (the writer hashes what it stores) is the
  blob digest: the compressed bytes are hashed once, not twice. For an uncompressed layer the
  diffID hash is skipped too: the digest *is* the diffID. An ingest left under the same ref by an
  interrupted run is truncated first (a stream cannot resume).
* When ``produce`` returns, the sink is drained, the compressor finished and the ingest committed
  with ``commit(size, digest, labels=...)``. ``AlreadyExists`` means the same blob is present,
  which is success: the labels are then merged into it with ``update(info, ["labels.<k>", ...])``.
  If anything fails, the ingest is aborted and the error re-raised (pallet errors as they are;
  OS errors translated).

Labels (the compressed-variant cache)
-------------------------------------
A compressed blob made here carries:

``containerd.io/uncompressed=<diffID>``
    the standard containerd/BuildKit label. Not set on uncompressed blobs (as containerd's
    walking differ): their digest is their diffID.
``pallet.io/uncompressed-size=<bytes>``
    size of the tar stream, so a cache hit can report it without decompressing.
``pallet.io/variant.<kind>.<level>=<encoder>``
    one label per (compression, canonical level) this blob is valid for, for example
    ``pallet.io/variant.gzip.3=isal-1.9.1;block=1MiB``. The value names the encoder for
    diagnostics; the key alone is the cache key. A blob can hold several such keys: the
    well-known empty gzip layer is the same 32 bytes at every gzip level.

A variant of diffID ``D`` for (``kind``, ``level``) is therefore a blob with
``containerd.io/uncompressed == D`` and the key ``pallet.io/variant.<kind>.<level>``, found with
one filtered ``walk`` (:func:`find_variant`); for ``uncompressed`` it is simply the blob ``D``.
The key deliberately omits the encoder: after a library upgrade an existing variant is still
reused, so layer digests stay stable and registries keep deduplicating them. Blobs that came from
elsewhere (pulled layers) have no variant key and are never taken for a variant of a given level;
:func:`convert_blob` returns them as they are when their compression already matches, unless
``force`` asks for the exact level.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO, Protocol

from .. import labels as _labels
from ..content import Info, Store, Writer
from ..errors import AlreadyExists, DigestMismatch, Error, InvalidArgument, NotFound
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest, Digester
from . import (
    SNIFF_SIZE,
    Buffer,
    Compression,
    Compressor,
    compressor,
    decompressed_reader,
    default_threads,
    detect,
    media_type,
    normalize_level,
    os_error,
)

__all__ = [
    "CHUNK_SIZE",
    "QUEUE_CHUNKS",
    "UNCOMPRESSED_SIZE_LABEL",
    "VARIANT_LABEL_PREFIX",
    "LayerResult",
    "Sink",
    "convert_blob",
    "find_variant",
    "variant_label",
    "write_layer",
]

#: Size of the chunks handed from the producer to the consumer thread.
CHUNK_SIZE = 1 << 20
#: Chunks the producer may be ahead of the consumer.
QUEUE_CHUNKS = 4
UNCOMPRESSED_SIZE_LABEL = "pallet.io/uncompressed-size"
VARIANT_LABEL_PREFIX = "pallet.io/variant."
_COPY_SIZE = 1 << 20


class Sink(Protocol):
    """Where a producer writes the uncompressed tar stream.

    ``write`` consumes (copies) ``data`` before it returns, so producers may reuse their
    buffers; the return value is the number of bytes taken and may be ignored.
    """

    def write(self, data: Buffer, /) -> object: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerResult:
    """A layer blob in the store: its descriptor, diffID and uncompressed (tar) size."""

    descriptor: Descriptor
    diff_id: Digest
    uncompressed_size: int


def variant_label(compression: Compression, level: int) -> str:
    """The variant cache key label for (``compression``, canonical ``level``)."""
    return f"{VARIANT_LABEL_PREFIX}{Compression(compression).value}.{level}"


# ---------------------------------------------------------------------------------------------
# the variant cache


def _result(info: Info, c: Compression, diff_id: Digest, usize: int, oci: bool) -> LayerResult:
    desc = Descriptor(media_type=media_type(c, oci=oci), digest=info.digest, size=info.size)
    return LayerResult(descriptor=desc, diff_id=diff_id, uncompressed_size=usize)


def find_variant(
    store: Store,
    diff_id: Digest,
    compression: Compression,
    level: int | None = None,
    *,
    oci: bool = True,
) -> LayerResult | None:
    """An existing blob holding ``diff_id`` compressed as (``compression``, ``level``), or None.

    Uncompressed: the blob ``diff_id`` itself. Otherwise a blob labelled with the diffID and the
    variant key (see the module docstring); with several, the oldest (then the smallest digest),
    so every caller picks the same one.
    """
    c = Compression(compression)
    lvl = normalize_level(c, level)
    diff_id = Digest.parse(diff_id)
    if c is Compression.UNCOMPRESSED:
        try:
            info = _info(store, diff_id)
        except NotFound:
            return None
        return _result(info, c, diff_id, info.size, oci)
    key = variant_label(c, lvl)
    flt = f'labels."{_labels.UNCOMPRESSED}"=="{diff_id}",labels."{key}"'
    best: Info | None = None
    for info in store.walk([flt]):
        # Re-check: the filter is a hint, the labels are the truth.
        if info.labels.get(_labels.UNCOMPRESSED) != diff_id or key not in info.labels:
            continue
        if best is None or (info.created_at, info.digest) < (best.created_at, best.digest):
            best = info
    if best is None:
        return None
    usize = _int_label(best, UNCOMPRESSED_SIZE_LABEL)
    if usize is None:
        return None
    return _result(best, c, diff_id, usize, oci)


def _int_label(info: Info, key: str) -> int | None:
    try:
        v = int(info.labels.get(key, ""))
    except ValueError:
        return None
    return v if v >= 0 else None


def _info(store: Store, dgst: Digest) -> Info:
    try:
        return store.info(dgst)
    except OSError as exc:
        raise os_error(f"blob {dgst}", exc) from exc


# ---------------------------------------------------------------------------------------------
# write_layer


_STOP = object()  # end of stream: finish the compressor
_ABORT = object()  # producer failed: drop everything


class _ConsumerFailed(Error):
    """Raised into the producer when the consumer thread has failed (its error is reported)."""


class _LayerSink:
    """The producer side: gathers writes into chunks and queues them for the consumer."""

    __slots__ = ("_buf", "_failed", "_q")

    def __init__(self, q: queue.Queue[object], failed: threading.Event) -> None:
        self._q = q
        self._failed = failed
        self._buf = bytearray()

    def write(self, data: Buffer, /) -> int:
        if self._failed.is_set():
            raise _ConsumerFailed("layer pipeline: compression or store write failed")
        mv = data if isinstance(data, memoryview) else memoryview(data)
        n = mv.nbytes
        if not self._buf and n >= CHUNK_SIZE:
            mv = mv.cast("B")
            for i in range(0, n, CHUNK_SIZE):
                self._q.put(bytes(mv[i : i + CHUNK_SIZE]))
            return n
        buf = self._buf
        buf += mv
        if len(buf) >= CHUNK_SIZE:
            self._q.put(buf)
            self._buf = bytearray()
        return n

    def finish(self) -> None:
        if self._buf:
            self._q.put(self._buf)
            self._buf = bytearray()
        self._q.put(_STOP)


class _Consumer(threading.Thread):
    """Hashes, compresses and stores the chunks, in order, off the producer's thread."""

    def __init__(
        self,
        q: queue.Queue[object],
        comp: Compressor,
        writer: Writer,
        failed: threading.Event,
        ref: str,
    ) -> None:
        super().__init__(name=f"pallet-layer-{ref}", daemon=True)
        self._q = q
        self._comp = comp
        self._w = writer
        self._failed = failed
        # The writer hashes what it stores (its digest() is the blob digest), so only the
        # uncompressed stream needs a hasher here, and not even that for uncompressed layers.
        self.diff = Digester() if comp.compression is not Compression.UNCOMPRESSED else None
        self.size_in = 0
        self.size_out = 0
        self.error: BaseException | None = None

    def _emit(self, out: bytes) -> None:
        if not out:
            return
        self._w.write(out)
        self.size_out += len(out)

    def run(self) -> None:
        q = self._q
        try:
            while True:
                item = q.get()
                if item is _STOP:
                    self._emit(self._comp.flush())
                    return
                if item is _ABORT:
                    return
                assert isinstance(item, (bytes, bytearray))
                if self.diff is not None:
                    self.diff.update(item)
                self.size_in += len(item)
                self._emit(self._comp.compress(item))
        except BaseException as exc:
            self.error = exc
            self._failed.set()
            # Keep draining so that a producer blocked in put() wakes up and sees the failure.
            while q.get() not in (_STOP, _ABORT):
                pass
        finally:
            self._comp.close()


def _translate(exc: BaseException, noun: str) -> BaseException:
    if isinstance(exc, OSError) and not isinstance(exc, Error):
        return os_error(noun, exc)
    return exc


def _commit(store: Store, w: Writer, size: int, dgst: Digest, labels: Mapping[str, str]) -> None:
    """Commit, treating AlreadyExists as success and merging ``labels`` into the present blob."""
    try:
        w.commit(size, dgst, labels=dict(labels))
        return
    except AlreadyExists:
        pass
    if labels:
        _merge_labels(store, dgst, labels)


def write_layer(
    produce: Callable[[Sink], object],
    store: Store,
    *,
    compression: Compression,
    level: int | None = None,
    oci: bool = True,
    ref: str | None = None,
    lease: str | None = None,
    labels: Mapping[str, str] | None = None,
    threads: int | None = None,
    diff_id: Digest | None = None,
) -> LayerResult:
    """Stream ``produce``'s tar into a compressed layer blob in ``store`` (one pass).

    Args:
        produce: called once with a :class:`Sink`; writes the uncompressed tar stream.
        compression, level: the encoding; ``level`` None means the default (the canonical level
            is the one recorded in the variant label).
        oci: OCI (default) or Docker media type in the returned descriptor.
        ref: ingest ref (default: a unique ``layer-<32 random hex digits>``).
        lease: passed to ``store.writer`` so the new blob is protected from GC. A blob that is
            reused (``diff_id`` cache hit, or a commit that finds the blob present) is attached
            to the lease only if the store does that on commit; the content-store protocol has
            no other way, so callers that rely on leases should also add cache hits to their
            lease through the lease manager.
        labels: extra labels for the blob (merged with the pipeline's own).
        threads: compression worker threads (default: CPUs available). Never changes the bytes.
        diff_id: if the caller knows the diffID (a previous export of the same snapshot), an
            existing variant is returned without calling ``produce``.

    Raises:
        InvalidArgument: bad level, threads or labels.
        Whatever ``produce`` raises; pallet errors of the store; OS errors translated.
    """
    c = Compression(compression)
    lvl = normalize_level(c, level)
    nthreads = default_threads() if threads is None else threads
    if not isinstance(nthreads, int) or isinstance(nthreads, bool) or nthreads < 1:
        raise InvalidArgument(f"compression threads {threads!r}: must be at least 1")
    extra = _labels.validate_all(labels or {})
    if diff_id is not None:
        hit = find_variant(store, diff_id, c, lvl, oci=oci)
        if hit is not None:
            if extra:
                _merge_labels(store, hit.descriptor.digest, extra)
            return hit
    ref = ref or f"layer-{os.urandom(16).hex()}"
    noun = f"layer {ref}"
    comp = compressor(c, lvl, threads=nthreads)
    committed = False
    try:
        with store.writer(ref, lease=lease) as w:
            if w.offset:  # an interrupted ingest under this ref: a stream cannot resume
                w.truncate(0)
            q: queue.Queue[object] = queue.Queue(QUEUE_CHUNKS)
            failed = threading.Event()
            consumer = _Consumer(q, comp, w, failed, ref)
            sink = _LayerSink(q, failed)
            consumer.start()
            produce_error: BaseException | None = None
            try:
                produce(sink)
            except BaseException as exc:
                produce_error = exc
            if produce_error is None and not failed.is_set():
                sink.finish()
            else:
                q.put(_ABORT)
            consumer.join()
            if consumer.error is not None:
                raise _translate(consumer.error, noun) from consumer.error
            if produce_error is not None:
                raise produce_error
            dgst = w.digest()
            did = consumer.diff.digest() if consumer.diff is not None else dgst
            usize, size = consumer.size_in, consumer.size_out
            own: dict[str, str] = {}
            if c is not Compression.UNCOMPRESSED:
                own[_labels.UNCOMPRESSED] = did
                own[UNCOMPRESSED_SIZE_LABEL] = str(usize)
                own[variant_label(c, lvl)] = comp.encoder
            _commit(store, w, size, dgst, {**extra, **own})
            committed = True
    except OSError as exc:
        raise os_error(noun, exc) from exc
    finally:
        comp.close()
        if not committed:
            with contextlib.suppress(Exception):
                store.abort(ref)
    desc = Descriptor(media_type=media_type(c, oci=oci), digest=dgst, size=size)
    return LayerResult(descriptor=desc, diff_id=did, uncompressed_size=usize)


def _merge_labels(store: Store, dgst: Digest, extra: Mapping[str, str]) -> None:
    info = _info(store, dgst)
    merged = {**info.labels, **extra}
    store.update(replace(info, labels=merged), [f"labels.{k}" for k in extra])


# ---------------------------------------------------------------------------------------------
# convert_blob


def _copy_into(src: BinaryIO) -> Callable[[Sink], object]:
    def produce(sink: Sink) -> None:
        buf = bytearray(_COPY_SIZE)
        mv = memoryview(buf)
        readinto = getattr(src, "readinto", None)
        while True:
            if readinto is not None:
                n = readinto(mv)
                if not n:
                    return
                sink.write(mv[:n])
            else:  # pragma: no cover - every reader here has readinto
                data = src.read(_COPY_SIZE)
                if not data:
                    return
                sink.write(data)

    return produce


def _sniff(store: Store, dgst: Digest) -> Compression:
    with store.open(dgst) as f:
        return detect(f.read(SNIFF_SIZE))


def _measure(store: Store, dgst: Digest) -> tuple[Digest, int]:
    """diffID and uncompressed size of a stored blob, by streaming decompression."""
    h = Digester()
    n = 0
    with store.open(dgst) as f, decompressed_reader(f, name=f"blob {dgst}") as r:
        while True:
            chunk = r.read(_COPY_SIZE)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return h.digest(), n


def convert_blob(
    store: Store,
    src: Descriptor,
    compression: Compression,
    level: int | None = None,
    *,
    oci: bool = True,
    lease: str | None = None,
    force: bool = False,
) -> LayerResult:
    """The layer ``src`` encoded as ``compression``: reused, found in the cache or converted.

    * ``src`` already has that compression (sniffed from its bytes, not its media type): it is
      returned as is, unless ``force`` is set and ``src`` is not a recorded variant of exactly
      ``level`` (uncompressed has no levels: always returned as is).
    * else an existing variant (:func:`find_variant`) is returned;
    * else ``src`` is decompressed and re-compressed through :func:`write_layer`.

    Facts learnt on the way (diffID, uncompressed size) are recorded on ``src`` as labels, so the
    next call is free. The returned descriptor uses ``compression``'s media type in the family
    chosen by ``oci``.

    Raises:
        NotFound: ``src`` is not in the store.
        InvalidArgument / DigestMismatch: ``src`` is corrupt, or its ``containerd.io/uncompressed``
            label disagrees with its content.
    """
    c = Compression(compression)
    lvl = normalize_level(c, level)
    info = _info(store, src.digest)
    try:
        src_kind = _sniff(store, src.digest)
    except OSError as exc:
        raise os_error(f"blob {src.digest}", exc) from exc
    label = info.labels.get(_labels.UNCOMPRESSED)
    diff_id: Digest | None
    if src_kind is Compression.UNCOMPRESSED:
        diff_id = src.digest
    else:
        diff_id = Digest.parse(label) if label else None

    if src_kind is c and (
        c is Compression.UNCOMPRESSED or not force or variant_label(c, lvl) in info.labels
    ):
        usize = (
            info.size
            if c is Compression.UNCOMPRESSED
            else _int_label(info, UNCOMPRESSED_SIZE_LABEL)
        )
        if diff_id is None or usize is None:
            measured, usize = _measure(store, src.digest)
            if diff_id is not None and measured != diff_id:
                raise DigestMismatch(
                    f"blob {src.digest}: uncompressed content is {measured}, "
                    f"label {_labels.UNCOMPRESSED} says {diff_id}"
                )
            diff_id = measured
            _merge_labels(
                store,
                src.digest,
                {_labels.UNCOMPRESSED: diff_id, UNCOMPRESSED_SIZE_LABEL: str(usize)},
            )
        return _result(info, c, diff_id, usize, oci)

    if diff_id is not None:
        hit = find_variant(store, diff_id, c, lvl, oci=oci)
        if hit is not None:
            return hit

    ref = f"convert-{src.digest.hex[:32]}-{c.value}-{lvl}-{os.urandom(4).hex()}"
    try:
        with store.open(src.digest) as f, decompressed_reader(f, name=f"blob {src.digest}") as r:
            res = write_layer(
                _copy_into(r), store, compression=c, level=lvl, oci=oci, ref=ref, lease=lease
            )
    except OSError as exc:
        raise os_error(f"blob {src.digest}", exc) from exc
    if diff_id is not None and res.diff_id != diff_id:
        raise DigestMismatch(
            f"blob {src.digest}: uncompressed content is {res.diff_id}, "
            f"label {_labels.UNCOMPRESSED} says {diff_id}"
        )
    if src_kind is not Compression.UNCOMPRESSED and (
        diff_id is None or UNCOMPRESSED_SIZE_LABEL not in info.labels
    ):
        with contextlib.suppress(NotFound):
            _merge_labels(
                store,
                src.digest,
                {
                    _labels.UNCOMPRESSED: res.diff_id,
                    UNCOMPRESSED_SIZE_LABEL: str(res.uncompressed_size),
                },
            )
    return res
