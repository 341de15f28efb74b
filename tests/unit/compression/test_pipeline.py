"""The one-pass layer pipeline and the compressed-variant cache.

Runs against a tiny in-memory store defined here (it counts writers, so cache reuse is visible),
the on-disk LocalStore and the store wired to the SQLite metadata database.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard

from pallet import filters
from pallet import labels as L
from pallet.compression import Compression, compressor
from pallet.compression.gzip import EMPTY_LAYER_DIFF_ID, EMPTY_LAYER_DIGEST, EMPTY_TAR
from pallet.compression.pipeline import (
    UNCOMPRESSED_SIZE_LABEL,
    LayerResult,
    Sink,
    convert_blob,
    find_variant,
    variant_label,
    write_layer,
)
from pallet.content import Info, Status
from pallet.content.local import LocalStore
from pallet.errors import (
    AlreadyExists,
    DigestMismatch,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from pallet.metadata.store import open_store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest

SRC = str(Path(__file__).resolve().parents[3] / "src")


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


# -- an in-memory content store -------------------------------------------------------------------


class MemWriter:
    def __init__(self, store: MemoryStore, ref: str) -> None:
        self._store = store
        self._ref = ref
        self._buf = bytearray()
        self._h = hashlib.sha256()
        self._closed = False
        self._started = datetime.now(UTC)

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return len(self._buf)

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._closed:
            raise FailedPrecondition(f"ingest ref {self._ref}: writer is closed")
        if self._store.fail_writes_after is not None and (
            len(self._buf) + len(data) > self._store.fail_writes_after
        ):
            raise OSError(28, "No space left on device")
        self._buf += data
        self._h.update(data)
        self._store.bytes_written += len(data)
        return len(data)

    def digest(self) -> Digest:
        return Digest("sha256:" + self._h.hexdigest())

    def status(self) -> Status:
        return Status(
            ref=self._ref,
            offset=len(self._buf),
            total=0,
            expected=None,
            started_at=self._started,
            updated_at=datetime.now(UTC),
        )

    def truncate(self, size: int) -> None:
        raise InvalidArgument("truncate: unsupported")

    def commit(
        self,
        size: int = 0,
        expected: Digest | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> Digest:
        try:
            d = self.digest()
            if size and size != len(self._buf):
                raise DigestMismatch(f"ingest ref {self._ref}: size {len(self._buf)} != {size}")
            if expected is not None and expected != d:
                raise DigestMismatch(f"ingest ref {self._ref}: digest {d} != {expected}")
            self._store.commits += 1
            if d in self._store.blobs:
                self._store.ingests.pop(self._ref, None)
                raise AlreadyExists(f"content {d}: already exists")
            now = datetime.now(UTC)
            self._store.blobs[d] = bytes(self._buf)
            self._store.infos[d] = Info(
                digest=d,
                size=len(self._buf),
                created_at=now,
                updated_at=now,
                labels=L.validate_all(labels or {}),
            )
            self._store.ingests.pop(self._ref, None)
            return d
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        self._store.active.discard(self._ref)

    def __enter__(self) -> MemWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryStore:
    """Enough of content.Store for the pipeline, with counters."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.infos: dict[Digest, Info] = {}
        self.ingests: dict[str, MemWriter] = {}
        self.active: set[str] = set()
        self.writers = 0
        self.commits = 0
        self.bytes_written = 0
        self.fail_writes_after: int | None = None

    def writer(
        self, ref: str, *, total: int = 0, expected: Digest | None = None, lease: str | None = None
    ) -> MemWriter:
        if ref in self.active:
            raise Unavailable(f"ingest ref {ref}: locked")
        self.writers += 1
        self.active.add(ref)
        w = self.ingests[ref] = MemWriter(self, ref)
        return w

    def open(self, desc: Descriptor | Digest) -> BinaryIO:
        d = desc.digest if isinstance(desc, Descriptor) else desc
        if d not in self.blobs:
            raise NotFound(f"content {d}: not found")
        return io.BytesIO(self.blobs[d])

    def info(self, dgst: Digest) -> Info:
        if dgst not in self.infos:
            raise NotFound(f"content {dgst}: not found")
        return self.infos[dgst]

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        cur = self.info(info.digest)
        new = L.apply_fieldpaths(cur.labels, info.labels, fieldpaths)
        self.infos[cur.digest] = dataclasses.replace(cur, labels=new, updated_at=datetime.now(UTC))
        return self.infos[cur.digest]

    def walk(self, filters_: Sequence[str] = ()) -> Iterator[Info]:
        flt = filters.parse(filters_)
        for info in list(self.infos.values()):

            def field(path: Sequence[str], info: Info = info) -> tuple[str, bool]:
                if len(path) == 2 and path[0] == "labels":
                    return info.labels.get(path[1], ""), path[1] in info.labels
                if path == ("digest",):
                    return str(info.digest), True
                return "", False

            if flt.match(field):
                yield info

    def delete(self, dgst: Digest) -> None:
        self.blobs.pop(dgst)
        self.infos.pop(dgst)

    def status(self, ref: str) -> Status:
        if ref not in self.ingests:
            raise NotFound(f"ingest ref {ref}: not found")
        return self.ingests[ref].status()

    def list_statuses(self, filters_: Sequence[str] = ()) -> list[Status]:
        return [w.status() for w in self.ingests.values()]

    def abort(self, ref: str) -> None:
        if self.ingests.pop(ref, None) is None:
            raise NotFound(f"ingest ref {ref}: not found")


@pytest.fixture(params=["memory", "local", "metadata"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "local":
        yield LocalStore(tmp_path / "content")
    else:
        db = open_store(tmp_path / "root")
        yield db.content
        db.close()


def read_blob(store: Any, d: Digest) -> bytes:
    with store.open(d) as f:
        return bytes(f.read())


def ingests(store: Any) -> list[Status]:
    return list(store.list_statuses())


# -- producers ------------------------------------------------------------------------------------


def make_tree(root: Path, seed: int = 3, files: int = 40) -> None:
    import random

    rnd = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        size = rnd.choice([0, 10, 1000, 70_000, 400_000])
        body = (b"line %d of file %d\n" % (i, i)) * (size // 20) + rnd.randbytes(size % 997)
        (d / f"f{i}.txt").write_bytes(body)
        os.utime(d / f"f{i}.txt", (1_700_000_000, 1_700_000_000))


def tar_producer(root: Path) -> Callable[[Sink], object]:
    def produce(sink: Sink) -> None:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
            for p in sorted(root.rglob("*")):
                ti = tf.gettarinfo(str(p), arcname=str(p.relative_to(root)))
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = 1_700_000_000
                if ti.isfile():
                    with open(p, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)

    return produce


def bytes_producer(data: bytes, chunk: int = 65536) -> Callable[[Sink], object]:
    def produce(sink: Sink) -> None:
        mv = memoryview(data)
        for i in range(0, len(data), chunk):
            sink.write(mv[i : i + chunk])

    return produce


def tar_bytes(root: Path) -> bytes:
    buf = io.BytesIO()
    tar_producer(root)(buf)  # type: ignore[arg-type]
    return buf.getvalue()


def decompress(kind: Compression, blob: bytes) -> bytes:
    if kind is Compression.GZIP:
        return gzip.decompress(blob)
    if kind is Compression.ZSTD:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as r:
            return bytes(r.read())
    return blob


# -- write_layer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Compression))
def test_write_layer_from_tarfile(store: Any, tmp_path: Path, kind: Compression) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    tar = tar_bytes(root)
    res = write_layer(tar_producer(root), store, compression=kind, threads=2)
    assert isinstance(res, LayerResult)
    blob = read_blob(store, res.descriptor.digest)
    assert res.descriptor.digest == sha(blob)
    assert res.descriptor.size == len(blob)
    assert res.diff_id == sha(tar)
    assert res.uncompressed_size == len(tar)
    assert decompress(kind, blob) == tar
    assert (
        res.descriptor.media_type
        == {
            Compression.GZIP: mt.OCI_LAYER_GZIP,
            Compression.ZSTD: mt.OCI_LAYER_ZSTD,
            Compression.UNCOMPRESSED: mt.OCI_LAYER,
        }[kind]
    )
    info = store.info(res.descriptor.digest)
    if kind is Compression.UNCOMPRESSED:
        assert res.descriptor.digest == res.diff_id
        assert L.UNCOMPRESSED not in info.labels
        assert not any(k.startswith("pallet.io/") for k in info.labels)
    else:
        assert info.labels[L.UNCOMPRESSED] == res.diff_id
        assert info.labels[UNCOMPRESSED_SIZE_LABEL] == str(len(tar))
        assert info.labels[variant_label(kind, 3)] == compressor(kind, 3).encoder
    with tarfile.open(fileobj=io.BytesIO(decompress(kind, blob))) as tf:
        assert len(tf.getnames()) == len(list(root.rglob("*")))
    assert ingests(store) == []


def test_write_layer_from_the_differ(store: Any, tmp_path: Path) -> None:
    from pallet.archive.diff import write_diff

    root = tmp_path / "tree"
    make_tree(root, files=30)
    expected = io.BytesIO()
    write_diff(None, root, expected)
    res = write_layer(
        lambda sink: write_diff(None, root, sink), store, compression=Compression.GZIP, threads=2
    )
    assert res.diff_id == sha(expected.getvalue())
    assert res.uncompressed_size == len(expected.getvalue())
    blob = read_blob(store, res.descriptor.digest)
    assert gzip.decompress(blob) == expected.getvalue()
    again = write_layer(
        lambda sink: write_diff(None, root, sink),
        MemoryStore(),
        compression=Compression.GZIP,
        threads=1,
    )
    assert again.descriptor.digest == res.descriptor.digest


def test_gzip_layer_readable_by_cli_tools(tmp_path: Path) -> None:
    store = MemoryStore()
    root = tmp_path / "tree"
    make_tree(root, files=60)
    res = write_layer(tar_producer(root), store, compression=Compression.GZIP)
    blob = read_blob(store, res.descriptor.digest)
    for tool in ("gzip", "pigz"):
        out = subprocess.run([tool, "-dc"], input=blob, capture_output=True, check=True)
        assert sha(out.stdout) == res.diff_id
    listing = subprocess.run(["tar", "-tzf", "-"], input=blob, capture_output=True, check=True)
    assert b"dir0/f0.txt" in listing.stdout
    z = write_layer(tar_producer(root), store, compression=Compression.ZSTD)
    out = subprocess.run(
        ["zstd", "-dc"],
        input=read_blob(store, z.descriptor.digest),
        capture_output=True,
        check=True,
    )
    assert sha(out.stdout) == z.diff_id == res.diff_id


def test_docker_media_types() -> None:
    store = MemoryStore()
    for kind, want in [
        (Compression.GZIP, mt.DOCKER_LAYER_GZIP),
        (Compression.ZSTD, mt.DOCKER_LAYER_ZSTD),
        (Compression.UNCOMPRESSED, mt.DOCKER_LAYER),
    ]:
        res = write_layer(bytes_producer(b"x" * 5000), store, compression=kind, oci=False)
        assert res.descriptor.media_type == want


def test_empty_layer_is_the_well_known_blob(store: Any) -> None:
    res = write_layer(
        bytes_producer(EMPTY_TAR, chunk=100), store, compression=Compression.GZIP, level=9
    )
    assert res.descriptor.digest == EMPTY_LAYER_DIGEST
    assert res.descriptor.size == 32
    assert res.diff_id == EMPTY_LAYER_DIFF_ID
    assert res.uncompressed_size == 1024
    info = store.info(res.descriptor.digest)
    assert info.labels[variant_label(Compression.GZIP, 9)] == "builtin:empty-layer"
    # the same blob at another level: AlreadyExists is success, the new variant key is merged
    res3 = write_layer(bytes_producer(EMPTY_TAR), store, compression=Compression.GZIP)
    assert res3.descriptor == res.descriptor
    labels = store.info(res.descriptor.digest).labels
    assert variant_label(Compression.GZIP, 9) in labels
    assert variant_label(Compression.GZIP, 3) in labels
    hit = find_variant(store, Digest(EMPTY_LAYER_DIFF_ID), Compression.GZIP, 9)
    assert hit is not None and hit.descriptor.digest == EMPTY_LAYER_DIGEST


def test_deterministic_across_threads_and_write_sizes() -> None:
    data = os.urandom(200_000) * 20  # 4 MB, blocks differ from write sizes
    for kind in (Compression.GZIP, Compression.ZSTD):
        digests = set()
        for threads, chunk in [(1, 65536), (2, 10240), (3, 1 << 20), (2, len(data))]:
            store = MemoryStore()
            res = write_layer(
                bytes_producer(data, chunk), store, compression=kind, level=1, threads=threads
            )
            digests.add(res.descriptor.digest)
        assert len(digests) == 1, kind


_CHILD = """
import sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
from test_pipeline import MemoryStore, bytes_producer
from pallet.compression import Compression
from pallet.compression.pipeline import write_layer
data = bytes(range(256)) * 20000 + b"tail"
r = write_layer(bytes_producer(data, 4097), MemoryStore(), compression=Compression({kind!r}),
                threads=3)
print(r.descriptor.digest, r.diff_id)
"""


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_same_digest_in_another_process(kind: str) -> None:
    data = bytes(range(256)) * 20000 + b"tail"
    r = write_layer(bytes_producer(data), MemoryStore(), compression=Compression(kind), threads=1)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(src=SRC, tests=str(Path(__file__).parent), kind=kind)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [r.descriptor.digest, r.diff_id]


def test_caller_labels_and_already_exists_merge(store: Any) -> None:
    data = b"some tar-ish bytes" * 1000
    a = write_layer(
        bytes_producer(data), store, compression=Compression.GZIP, labels={"x.io/a": "1"}
    )
    b = write_layer(
        bytes_producer(data), store, compression=Compression.GZIP, labels={"x.io/b": "2"}
    )
    assert a == b
    lbl = store.info(a.descriptor.digest).labels
    assert lbl["x.io/a"] == "1" and lbl["x.io/b"] == "2"
    assert lbl[L.UNCOMPRESSED] == a.diff_id
    assert ingests(store) == []


def test_bad_arguments() -> None:
    store = MemoryStore()
    with pytest.raises(InvalidArgument, match="compression level 12"):
        write_layer(bytes_producer(b""), store, compression=Compression.GZIP, level=12)
    with pytest.raises(InvalidArgument, match="threads"):
        write_layer(bytes_producer(b""), store, compression=Compression.GZIP, threads=0)
    with pytest.raises(InvalidArgument, match="label"):
        write_layer(bytes_producer(b""), store, compression=Compression.GZIP, labels={"": "x"})
    assert store.writers == 0


# -- failures -------------------------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", list(Compression))
def test_producer_error_aborts_ingest(store: Any, kind: Compression) -> None:
    def produce(sink: Sink) -> None:
        for _ in range(10):
            sink.write(os.urandom(1 << 20))
        raise Boom("differ failed")

    with pytest.raises(Boom, match="differ failed"):
        write_layer(produce, store, compression=kind, threads=2, ref="layer-boom")
    assert ingests(store) == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("pallet-")] == []
    assert list(store.walk()) == []


def test_store_write_error_is_translated_and_does_not_hang() -> None:
    store = MemoryStore()
    store.fail_writes_after = 2 << 20
    calls = []

    def produce(sink: Sink) -> None:
        for _ in range(200):  # far more than the queue holds: the producer must be stopped
            sink.write(os.urandom(1 << 20))
            calls.append(1)

    with pytest.raises(FailedPrecondition, match=r"layer layer-x: No space left on device"):
        write_layer(produce, store, compression=Compression.GZIP, level=0, ref="layer-x", threads=2)
    assert len(calls) < 50
    assert store.ingests == {}
    assert store.infos == {}


def test_producer_swallowing_the_stop_signal_still_reports_store_error() -> None:
    store = MemoryStore()
    store.fail_writes_after = 0

    def produce(sink: Sink) -> None:
        try:
            for _ in range(20):
                sink.write(os.urandom(1 << 20))
        except Error as exc:
            raise RuntimeError("wrapped by the differ") from exc

    with pytest.raises(FailedPrecondition, match="No space left"):
        write_layer(produce, store, compression=Compression.UNCOMPRESSED)


def test_leftover_ingest_under_the_same_ref_is_restarted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c")
    with store.writer("layer-again") as w:
        w.write(b"garbage from an interrupted run")  # closed, not committed: kept for resume
    assert [s.offset for s in store.list_statuses()] == [31]
    data = b"tar stream" * 1000
    res = write_layer(
        bytes_producer(data), store, compression=Compression.UNCOMPRESSED, ref="layer-again"
    )
    assert res.descriptor.digest == sha(data)
    assert read_blob(store, res.descriptor.digest) == data
    assert store.list_statuses() == []


def test_ref_in_use_is_unavailable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c")
    with store.writer("layer-busy"), pytest.raises(Unavailable):
        write_layer(bytes_producer(b"abc"), store, compression=Compression.GZIP, ref="layer-busy")


# -- the variant cache ----------------------------------------------------------------------------


def counting(produce: Callable[[Sink], object]) -> tuple[Callable[[Sink], object], list[int]]:
    calls: list[int] = []

    def wrapped(sink: Sink) -> object:
        calls.append(1)
        return produce(sink)

    return wrapped, calls


def test_write_layer_reuses_variant_when_diff_id_known(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    produce, calls = counting(tar_producer(root))
    first = write_layer(produce, store, compression=Compression.ZSTD, level=5)
    assert calls == [1]
    again = write_layer(
        produce, store, compression=Compression.ZSTD, level=5, diff_id=first.diff_id
    )
    assert calls == [1]  # not produced, not compressed again
    assert again == first
    # another level is another variant: produced
    other = write_layer(
        produce, store, compression=Compression.ZSTD, level=6, diff_id=first.diff_id
    )
    assert calls == [1, 1]
    assert other.descriptor.digest != first.descriptor.digest
    assert other.diff_id == first.diff_id
    # the default level is recorded canonically: level None == 3 == zstd 0
    d3 = write_layer(produce, store, compression=Compression.ZSTD, diff_id=first.diff_id)
    assert calls == [1, 1, 1]
    d0 = write_layer(produce, store, compression=Compression.ZSTD, level=0, diff_id=first.diff_id)
    assert calls == [1, 1, 1] and d0 == d3


def test_find_variant() -> None:
    store = MemoryStore()
    data = b"layer" * 10000
    g = write_layer(bytes_producer(data), store, compression=Compression.GZIP, level=1)
    u = write_layer(bytes_producer(data), store, compression=Compression.UNCOMPRESSED)
    assert find_variant(store, g.diff_id, Compression.GZIP, 1) == g
    assert find_variant(store, g.diff_id, Compression.GZIP, 2) is None
    assert find_variant(store, g.diff_id, Compression.ZSTD) is None
    assert find_variant(store, g.diff_id, Compression.UNCOMPRESSED) == u
    assert find_variant(store, sha(b"other"), Compression.GZIP, 1) is None
    docker = find_variant(store, g.diff_id, Compression.GZIP, 1, oci=False)
    assert docker is not None and docker.descriptor.media_type == mt.DOCKER_LAYER_GZIP
    # a blob that only claims the diffID (pulled from elsewhere) is not a variant of a level
    foreign = gzip.compress(data)
    with store.writer("foreign") as w:
        w.write(foreign)
        w.commit(len(foreign), sha(foreign), labels={L.UNCOMPRESSED: g.diff_id})
    assert find_variant(store, g.diff_id, Compression.GZIP, 6) is None


def test_convert_blob_and_cache(store: Any, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    tar = tar_bytes(root)
    src = write_layer(tar_producer(root), store, compression=Compression.GZIP)

    z = convert_blob(store, src.descriptor, Compression.ZSTD, 3)
    assert z.diff_id == src.diff_id == sha(tar)
    assert z.uncompressed_size == len(tar)
    assert z.descriptor.media_type == mt.OCI_LAYER_ZSTD
    assert decompress(Compression.ZSTD, read_blob(store, z.descriptor.digest)) == tar
    # converting gives the same bytes as compressing the tree directly
    direct = write_layer(tar_producer(root), MemoryStore(), compression=Compression.ZSTD)
    assert direct.descriptor == z.descriptor

    before = {i.digest for i in store.walk()}
    z2 = convert_blob(store, src.descriptor, Compression.ZSTD, 3)
    assert z2 == z
    assert {i.digest for i in store.walk()} == before

    u = convert_blob(store, z.descriptor, Compression.UNCOMPRESSED)
    assert u.descriptor.digest == src.diff_id
    assert read_blob(store, u.descriptor.digest) == tar
    back = convert_blob(store, u.descriptor, Compression.GZIP)
    assert back == src  # found in the cache (the label says gzip level 3)


def test_convert_counts_no_new_writers_on_hit() -> None:
    store = MemoryStore()
    data = os.urandom(100_000) * 5
    src = write_layer(bytes_producer(data), store, compression=Compression.GZIP, level=1)
    convert_blob(store, src.descriptor, Compression.ZSTD)
    n = store.writers
    convert_blob(store, src.descriptor, Compression.ZSTD)
    convert_blob(store, src.descriptor, Compression.ZSTD, 0)
    assert store.writers == n


def test_convert_same_kind_and_force() -> None:
    store = MemoryStore()
    data = b"0123456789abcdef" * 100_000
    src = write_layer(bytes_producer(data), store, compression=Compression.GZIP, level=1)
    n = store.writers
    same = convert_blob(store, src.descriptor, Compression.GZIP, 9)
    assert same == src and store.writers == n  # not forced: any gzip will do
    same1 = convert_blob(store, src.descriptor, Compression.GZIP, 1, force=True)
    assert same1 == src and store.writers == n  # forced, but it is that exact variant
    forced = convert_blob(store, src.descriptor, Compression.GZIP, 9, force=True)
    assert store.writers == n + 1
    assert forced.descriptor.digest != src.descriptor.digest
    assert forced.diff_id == src.diff_id
    assert gzip.decompress(read_blob(store, forced.descriptor.digest)) == data
    again = convert_blob(store, src.descriptor, Compression.GZIP, 9, force=True)
    assert again == forced and store.writers == n + 1


def test_convert_foreign_blob_learns_labels() -> None:
    store = MemoryStore()
    data = b"foreign layer " * 50_000
    blob = gzip.compress(data, mtime=0)
    with store.writer("pull") as w:
        w.write(blob)
        w.commit(len(blob), sha(blob))
    src = Descriptor(media_type=mt.DOCKER_LAYER_GZIP, digest=sha(blob), size=len(blob))
    r = convert_blob(store, src, Compression.GZIP)  # same kind: reused, measured once
    assert r.descriptor.digest == sha(blob)
    assert r.descriptor.media_type == mt.OCI_LAYER_GZIP
    assert r.diff_id == sha(data) and r.uncompressed_size == len(data)
    lbl = store.info(sha(blob)).labels
    assert lbl[L.UNCOMPRESSED] == sha(data)
    assert lbl[UNCOMPRESSED_SIZE_LABEL] == str(len(data))
    z = convert_blob(store, src, Compression.ZSTD)
    assert z.diff_id == sha(data)


def test_convert_errors() -> None:
    store = MemoryStore()
    with pytest.raises(NotFound):
        convert_blob(
            store,
            Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha(b"x"), size=1),
            Compression.ZSTD,
        )
    data = os.urandom(300_000)
    bad = gzip.compress(data)[:-20]
    with store.writer("bad") as w:
        w.write(bad)
        w.commit(len(bad), sha(bad))
    desc = Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha(bad), size=len(bad))
    with pytest.raises(InvalidArgument, match=f"blob {sha(bad)}: gzip data truncated"):
        convert_blob(store, desc, Compression.ZSTD)
    assert store.ingests == {}
    # a wrong containerd.io/uncompressed label is caught
    good = gzip.compress(data)
    with store.writer("lie") as w:
        w.write(good)
        w.commit(len(good), sha(good), labels={L.UNCOMPRESSED: sha(b"not it")})
    desc = Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha(good), size=len(good))
    with pytest.raises(DigestMismatch, match="label containerd.io/uncompressed says"):
        convert_blob(store, desc, Compression.ZSTD)


# -- memory ---------------------------------------------------------------------------------------


def test_memory_stays_flat_on_a_300_mb_stream() -> None:
    block = (bytes(range(256)) * 4096)[: 1 << 20]
    total = 300 << 20

    def produce(sink: Sink) -> None:
        mv = memoryview(block)
        for i in range(total >> 20):
            sink.write(b"%08d" % i)  # odd-sized writes: chunks never align with blocks
            sink.write(mv[8:])

    store = MemoryStore()
    tracemalloc.start()
    try:
        res = write_layer(produce, store, compression=Compression.GZIP, level=1, threads=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.uncompressed_size == total
    assert peak < 32 << 20, peak
    assert store.bytes_written < 16 << 20


_RSS_CHILD = """
import os, sys
sys.path.insert(0, {src!r})
from pallet.compression import Compression
from pallet.compression.pipeline import write_layer
from pallet.content.local import LocalStore
noise = os.urandom(1 << 20)
def produce(sink):
    for i in range(300):
        sink.write(noise[i:] + noise[:i])
r = write_layer(produce, LocalStore({root!r}), compression=Compression({kind!r}), threads=2)
assert r.uncompressed_size == 300 << 20
# VmHWM, not ru_maxrss: ru_maxrss is inherited from the parent across fork and exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) // 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_peak_rss_incompressible_300_mb(kind: str, tmp_path: Path) -> None:
    # incompressible data through a real on-disk store: RSS includes C buffers (isal, libzstd)
    code = _RSS_CHILD.format(src=SRC, root=str(tmp_path / "c"), kind=kind)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) < 150, out.stdout
