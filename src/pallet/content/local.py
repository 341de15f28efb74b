"""On-disk content store (containerd ``plugins/content/local``).

Layout under ``<root>``::

    blobs/<alg>/<hex>            committed blobs, read-only
    ingest/<sha256(ref)>/        one directory per open or interrupted ingest:
        ref                      the ref text (checked on resume)
        data                     appended bytes
        startedat, total,        RFC 3339 start time, expected size and digest (when known),
        expected                 each written through tmp + rename
    ingest/<sha256(ref)>.lock    flock(2) file: one writer per ref across threads and processes

Locking uses ``flock`` on a lock file that lives beside the ingest directory. ``flock`` conflicts
between two open file descriptions even inside one process, so the same lock guards threads and
processes. A lock file is unlinked while held (commit, abort); an acquirer therefore checks, after
locking, that the path still names the inode it locked, and retries otherwise.

Labels, timestamps and lease attachment are not kept on disk: a :class:`ContentIndex` (the
SQLite metadata database in production, :class:`MemoryIndex` otherwise) records them, and its
``guard()`` is held around the publish step so that garbage collection in another process never
sees a blob on disk that is not yet recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from .. import labels as _labels
from ..errors import (
    AlreadyExists,
    DigestMismatch,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from ..oci.descriptor import Descriptor
from ..oci.digest import ALGORITHMS, Digest, Digester
from . import Info, Status, WriterBase

if TYPE_CHECKING:
    from .. import filters as _filters


__all__ = ["ContentIndex", "LocalStore", "LocalWriter", "MemoryIndex"]

_CHUNK = 1 << 20
_LOCK_TRIES = 10  # 1, 2, 4 ... 512 ms with jitter: about half a second in all, as containerd


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _from_ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


class ContentIndex(Protocol):
    """Where labels, timestamps and lease membership of blobs and ingests are recorded."""

    def guard(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) while a blob is published; garbage collection takes it exclusively."""
        ...

    def record_blob(
        self, dgst: Digest, size: int, labels: Mapping[str, str], lease: str | None
    ) -> None: ...
    def attach(self, lease: str, rtype: str, rid: str) -> None: ...
    def get_blob(self, dgst: Digest) -> tuple[dict[str, str], datetime, datetime] | None: ...
    def update_labels(
        self, dgst: Digest, size: int, new: Mapping[str, str], fieldpaths: Sequence[str]
    ) -> None:
        """Apply a field-path label update atomically (read, modify and write in one step)."""
        ...

    def forget_blob(self, dgst: Digest) -> None: ...
    def record_ingest(self, ref: str, lease: str | None) -> None: ...
    def forget_ingest(self, ref: str) -> None: ...


class MemoryIndex:
    """A process-local :class:`ContentIndex` (tests, throw-away stores)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[Digest, tuple[dict[str, str], datetime, datetime]] = {}
        self.leases: dict[str, set[tuple[str, str]]] = {}

    def guard(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def record_blob(
        self, dgst: Digest, size: int, labels: Mapping[str, str], lease: str | None
    ) -> None:
        with self._lock:
            now = _now()
            old = self._blobs.get(dgst)
            merged = dict(old[0]) if old else {}
            merged.update(labels)
            self._blobs[dgst] = (merged, old[1] if old else now, now)
            if lease:
                self.leases.setdefault(lease, set()).add(("content", dgst))

    def attach(self, lease: str, rtype: str, rid: str) -> None:
        with self._lock:
            self.leases.setdefault(lease, set()).add((rtype, rid))

    def get_blob(self, dgst: Digest) -> tuple[dict[str, str], datetime, datetime] | None:
        with self._lock:
            rec = self._blobs.get(dgst)
            return (dict(rec[0]), rec[1], rec[2]) if rec else None

    def update_labels(
        self, dgst: Digest, size: int, new: Mapping[str, str], fieldpaths: Sequence[str]
    ) -> None:
        with self._lock:
            now = _now()
            old = self._blobs.get(dgst)
            labels = _labels.apply_fieldpaths(old[0] if old else {}, new, fieldpaths)
            self._blobs[dgst] = (labels, old[1] if old else now, now)

    def forget_blob(self, dgst: Digest) -> None:
        with self._lock:
            self._blobs.pop(dgst, None)

    def record_ingest(self, ref: str, lease: str | None) -> None:
        if lease:
            self.attach(lease, "ingests", ref)

    def forget_ingest(self, ref: str) -> None:
        with self._lock:
            for res in self.leases.values():
                res.discard(("ingests", ref))


def _validate_ref(ref: str) -> None:
    if not ref or not isinstance(ref, str):
        raise InvalidArgument("ingest ref '': must not be empty")
    if "\x00" in ref or len(ref) > 4096:
        raise InvalidArgument(f"ingest ref {ref[:80]!r}: invalid")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _RefLock:
    """An flock(2) held on ``<ingest>/<h>.lock``."""

    def __init__(self, path: Path, ref: str) -> None:
        self.path = path
        self.ref = ref
        self.fd = -1

    def acquire(self, *, tries: int = _LOCK_TRIES) -> None:
        delay = 0.001
        for attempt in range(tries):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if attempt == tries - 1:
                    break
                import random

                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.512)
                continue
            # the holder before us may have unlinked the file: then our lock guards nothing
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)
        raise Unavailable(f"ingest ref {self.ref}: locked by another writer")

    def release(self, *, unlink: bool = False) -> None:
        if self.fd < 0:
            return
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)  # closing the last descriptor drops the flock
        self.fd = -1


_WRITEBACK_STEP = 8 << 20
_sync_file_range: Callable[[int, int, int, int], int] | None = None
_writeback_state = 0  # 0: not tried, 1: available, -1: unavailable


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk now
    (``sync_file_range(SYNC_FILE_RANGE_WRITE)``: asynchronous, pages stay cached), so that
    the fsync of a commit waits for the tail of a blob instead of all of it.

    Python's ``os`` has no binding for it; it is called through ``ctypes`` (loaded on the
    first blob larger than one step). Where it is missing or refused, nothing happens.
    """
    global _sync_file_range, _writeback_state
    if _writeback_state < 0:
        return
    if _writeback_state == 0:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            fn.restype = ctypes.c_int
            _sync_file_range = fn
            _writeback_state = 1
        except (ImportError, OSError, AttributeError):
            _writeback_state = -1
            return
    assert _sync_file_range is not None
    if _sync_file_range(fd, offset, length, 2) != 0:  # 2: SYNC_FILE_RANGE_WRITE
        _writeback_state = -1  # e.g. a file system that does not support it


class LocalWriter(WriterBase):
    """An ingest in progress. Not thread-safe: one writer belongs to one thread at a time."""

    def __init__(
        self,
        store: LocalStore,
        ref: str,
        dirpath: Path,
        lock: _RefLock,
        total: int,
        expected: Digest | None,
        lease: str | None,
    ) -> None:
        super().__init__(ref, expected, lease)
        self._store = store
        self._dir = dirpath
        self._lock = lock
        self._total = total
        alg = expected.algorithm if expected else "sha256"
        self._hasher = Digester(alg)
        data = dirpath / "data"
        self._fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        # resume: re-hash what a previous writer left
        size = os.fstat(self._fd).st_size
        if size:
            with open(data, "rb") as f:
                while chunk := f.read(_CHUNK):
                    self._hasher.update(chunk)
                    self._offset += len(chunk)
        self._written_back = self._offset
        st = dirpath / "startedat"
        self._started = _from_ts(st.read_text()) if st.exists() else _now()

    # -- Writer protocol --------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._check_open()
        view = memoryview(data)
        n = len(view)
        written = 0
        while written < n:
            written += os.write(self._fd, view[written:])
        self._hasher.update(view)
        self._offset += n
        if self._offset - self._written_back >= _WRITEBACK_STEP:
            _start_writeback(self._fd, self._written_back, self._offset - self._written_back)
            self._written_back = self._offset
        return n

    def digest(self) -> Digest:
        return self._hasher.digest()

    def status(self) -> Status:
        st = os.fstat(self._fd)
        return Status(
            ref=self._ref,
            offset=self._offset,
            total=self._total,
            expected=self._expected,
            started_at=self._started,
            updated_at=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def truncate(self, size: int) -> None:
        if size != 0:
            raise InvalidArgument(f"ingest ref {self._ref}: truncate only to 0 is supported")
        os.ftruncate(self._fd, 0)
        self._offset = 0
        self._hasher = Digester(self._hasher.algorithm)

    def _commit(self, size: int, expected: Digest | None, labels: dict[str, str]) -> Digest:
        try:
            return self._publish(size, expected or self._expected, labels)
        finally:
            self.close()

    def _publish(self, size: int, expected: Digest | None, lbl: dict[str, str]) -> Digest:
        os.fsync(self._fd)
        if size > 0 and size != self._offset:
            raise DigestMismatch(
                f"ingest ref {self._ref}: unexpected commit size {self._offset}, expected {size}"
            )
        if expected is not None and expected.algorithm != self._hasher.algorithm:
            dgst = _hash_file(self._dir / "data", expected.algorithm)
        else:
            dgst = self._hasher.digest()
        if expected is not None and dgst != expected:
            raise DigestMismatch(
                f"ingest ref {self._ref}: unexpected commit digest {dgst}, expected {expected}"
            )
        store = self._store
        target = store.blob_path(dgst)
        data = self._dir / "data"
        with store.index.guard():
            if target.exists():
                if self._lease:
                    store.index.attach(self._lease, "content", dgst)
                if lbl:
                    store._merge_labels(dgst, lbl)
                self._cleanup()
                raise AlreadyExists(f"content {dgst}: already exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(data, 0o444)
            os.rename(data, target)
            _fsync_dir(target.parent)
            store.index.record_blob(dgst, self._offset, lbl, self._lease)
        self._cleanup()
        return dgst

    def _cleanup(self) -> None:
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)
        self._store.index.forget_ingest(self._ref)
        self._store._release(self, unlink=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._store._release(self, unlink=False)

    @property
    def lock(self) -> _RefLock:
        return self._lock


def _hash_file(path: Path, algorithm: str) -> Digest:
    import hashlib

    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return Digest(f"{algorithm}:{h.hexdigest()}")


class LocalStore:
    """Content store on local disk. Safe for many threads and many processes on one root."""

    def __init__(self, root: str | os.PathLike[str], *, index: ContentIndex | None = None) -> None:
        self.root = Path(root)
        self.index: ContentIndex = index if index is not None else MemoryIndex()
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "ingest").mkdir(parents=True, exist_ok=True)

    # -- paths ------------------------------------------------------------------------------
    def blob_path(self, dgst: Digest) -> Path:
        return self.root / "blobs" / dgst.algorithm / dgst.hex

    def _ingest_dir(self, ref: str) -> Path:
        import hashlib

        return self.root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    # -- Provider ---------------------------------------------------------------------------
    def open(self, desc: Descriptor | Digest) -> BinaryIO:
        dgst = desc.digest if isinstance(desc, Descriptor) else desc
        try:
            return open(self.blob_path(dgst), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {dgst}: not found") from None

    def read_at(self, dgst: Digest, offset: int, n: int) -> bytes:
        """Random-access read of ``n`` bytes at ``offset``."""
        with self.open(dgst) as f:
            return os.pread(f.fileno(), n, offset)

    # -- Ingester ---------------------------------------------------------------------------
    def writer(
        self, ref: str, *, total: int = 0, expected: Digest | None = None, lease: str | None = None
    ) -> LocalWriter:
        _validate_ref(ref)
        if expected is not None:
            expected = Digest.parse(expected)
            if self.blob_path(expected).exists():
                with self.index.guard():
                    if self.blob_path(expected).exists():
                        if lease:
                            self.index.attach(lease, "content", expected)
                        raise AlreadyExists(f"content {expected}: already exists")
        d = self._ingest_dir(ref)
        lock = _RefLock(d.with_name(d.name + ".lock"), ref)
        lock.acquire()
        try:
            w = self._open_ingest(d, ref, lock, total, expected, lease)
        except BaseException:
            lock.release()
            raise
        return w

    def _open_ingest(
        self,
        d: Path,
        ref: str,
        lock: _RefLock,
        total: int,
        expected: Digest | None,
        lease: str | None,
    ) -> LocalWriter:
        fresh = True
        if d.is_dir():
            try:
                stored_ref = (d / "ref").read_text()
            except OSError:
                stored_ref = None
            if stored_ref == ref:
                fresh = False
                old_total = _read_int(d / "total")
                if total and old_total and total != old_total:
                    raise InvalidArgument(
                        f"ingest ref {ref}: provided total {total} differs from status {old_total}"
                    )
                if not total:
                    total = old_total
                if expected is None and (d / "expected").exists():
                    with contextlib.suppress(InvalidArgument, OSError):
                        expected = Digest.parse((d / "expected").read_text())
            else:
                # unreadable or foreign status: start over, as containerd does
                import shutil

                shutil.rmtree(d, ignore_errors=True)
        if fresh:
            d.mkdir(parents=True, exist_ok=True)
            _write_atomic(d / "startedat", _ts(_now()))
            _write_atomic(d / "ref", ref)
        if total:
            _write_atomic(d / "total", str(total))
        if expected is not None:
            _write_atomic(d / "expected", str(expected))
        self.index.record_ingest(ref, lease)
        return LocalWriter(self, ref, d, lock, total, expected, lease)

    def _release(self, w: LocalWriter, *, unlink: bool) -> None:
        w.lock.release(unlink=unlink)

    # -- Manager ----------------------------------------------------------------------------
    def info(self, dgst: Digest) -> Info:
        dgst = Digest.parse(dgst)
        try:
            st = os.stat(self.blob_path(dgst))
        except FileNotFoundError:
            raise NotFound(f"content {dgst}: not found") from None
        rec = self.index.get_blob(dgst)
        if rec is None:
            mt = datetime.fromtimestamp(st.st_mtime, UTC)
            return Info(digest=dgst, size=st.st_size, created_at=mt, updated_at=mt, labels={})
        return Info(
            digest=dgst, size=st.st_size, created_at=rec[1], updated_at=rec[2], labels=rec[0]
        )

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        cur = self.info(info.digest)
        self.index.update_labels(cur.digest, cur.size, info.labels, fieldpaths)
        return self.info(cur.digest)

    def _merge_labels(self, dgst: Digest, lbl: Mapping[str, str]) -> None:
        size = os.stat(self.blob_path(dgst)).st_size
        self.index.update_labels(dgst, size, lbl, [f"labels.{k}" for k in lbl])

    def digests(self) -> Iterator[Digest]:
        """Every committed blob on disk (no metadata lookups)."""
        blobs = self.root / "blobs"
        for alg in sorted(ALGORITHMS):
            try:
                names = sorted(os.listdir(blobs / alg))
            except FileNotFoundError:
                continue
            for hx in names:
                if len(hx) == ALGORITHMS[alg] and not hx.startswith("."):
                    yield Digest(f"{alg}:{hx}")

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        from .. import filters as _filters  # on first use: walks with filters

        flt = _filters.parse(filters)
        for dgst in self.digests():
            try:
                info = self.info(dgst)
            except NotFound:
                continue  # deleted meanwhile
            if flt.match(_info_adaptor(info)):
                yield info

    def delete(self, dgst: Digest) -> None:
        dgst = Digest.parse(dgst)
        try:
            os.unlink(self.blob_path(dgst))
        except FileNotFoundError:
            raise NotFound(f"content {dgst}: not found") from None
        self.index.forget_blob(dgst)

    # -- IngestManager ----------------------------------------------------------------------
    def dir_status(self, d: Path) -> Status | None:
        """The status of ingest directory ``d`` (from :meth:`ingest_dirs`); None if unreadable."""
        try:
            ref = (d / "ref").read_text()
            started = _from_ts((d / "startedat").read_text())
            st = os.stat(d / "data")
        except (OSError, ValueError):
            return None
        exp: Digest | None = None
        if (d / "expected").exists():
            with contextlib.suppress(InvalidArgument, OSError):
                exp = Digest.parse((d / "expected").read_text())
        return Status(
            ref=ref,
            offset=st.st_size,
            total=_read_int(d / "total"),
            expected=exp,
            started_at=started,
            updated_at=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def status(self, ref: str) -> Status:
        _validate_ref(ref)
        s = self.dir_status(self._ingest_dir(ref))
        if s is None or s.ref != ref:
            raise NotFound(f"ingest ref {ref}: not found")
        return s

    def ingest_dirs(self) -> Iterator[Path]:
        base = self.root / "ingest"
        for name in sorted(os.listdir(base)):
            p = base / name
            if not name.endswith(".lock") and not name.startswith(".") and p.is_dir():
                yield p

    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]:
        from .. import filters as _filters  # on first use: walks with filters

        flt = _filters.parse(filters)
        out = []
        for d in self.ingest_dirs():
            s = self.dir_status(d)
            if s is not None and flt.match(functools.partial(_status_field, s)):
                out.append(s)
        return out

    def abort(self, ref: str) -> None:
        _validate_ref(ref)
        d = self._ingest_dir(ref)
        lock = _RefLock(d.with_name(d.name + ".lock"), ref)
        lock.acquire()
        try:
            if not d.is_dir():
                raise NotFound(f"ingest ref {ref}: not found")
            import shutil

            shutil.rmtree(d)
            self.index.forget_ingest(ref)
        finally:
            lock.release(unlink=True)

    def abort_dir(self, d: Path) -> bool:
        """Remove an ingest directory whose ref cannot be read (fsck, gc). False if it is busy."""
        lock = _RefLock(d.with_name(d.name + ".lock"), d.name)
        try:
            lock.acquire(tries=1)
        except Unavailable:
            return False
        try:
            import shutil

            shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release(unlink=True)
        return True


def _read_int(p: Path) -> int:
    try:
        return int(p.read_text())
    except (OSError, ValueError):
        return 0


def _info_adaptor(info: Info) -> _filters.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        if not path:
            return "", False
        if path[0] == "digest" and len(path) == 1:
            return str(info.digest), True
        if path[0] == "size" and len(path) == 1:
            return str(info.size), True
        if path[0] == "labels" and len(path) >= 2:
            key = ".".join(path[1:])
            v = info.labels.get(key)
            return (v, True) if v is not None else ("", False)
        return "", False

    return field


def _status_field(s: Status, path: Sequence[str]) -> tuple[str, bool]:
    if list(path) == ["ref"]:
        return s.ref, True
    if list(path) == ["expected"] and s.expected:
        return str(s.expected), True
    return "", False
