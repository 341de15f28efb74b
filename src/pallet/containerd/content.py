"""containerd's content service as a :class:`pallet.content.Store`.

Writing drives the bidirectional ``Write`` stream (spec/containerd.md §1.10): the writer sends
``STAT`` with the ref (and total/expected) when it opens and learns the resume offset; data goes
out in 1 MiB ``WRITE`` requests, each carrying the offset it starts at, with up to
:data:`WINDOW` requests in flight (every request gets one response; an error ends the stream and
surfaces at the next call); ``COMMIT`` carries the last chunk, the size, the expected digest and
the labels. One stream is one ingest lock in the daemon: a second writer on the same ref waits
about half a second and gets :class:`~pallet.errors.Unavailable`, as with the embedded store.

Semantics kept equal to the embedded store (:mod:`pallet.content.local`):

* ``AlreadyExists`` when the expected digest is present (at open or at commit); at commit the
  blob is then added to the writer's lease and given the commit's labels, as the embedded store
  does (containerd itself does neither for a collision found at commit).
* Size and digest mismatches at commit are :class:`~pallet.errors.DigestMismatch`; the ingest
  stays for resumption or ``abort``.
* Reopening a ref with a different non-zero ``total`` is ``InvalidArgument`` (containerd would
  silently restart the ingest; the writer checks ``Status`` first).
* Field paths, labels and filters are validated here with pallet's own rules and messages before
  the daemon sees them.

Known differences, all from containerd 1.6 itself: ``Status.expected`` of an interrupted ingest
is not reported (the daemon does not record it); ``abort`` does not wait for a writer holding
the ref; blobs are always hashed with sha256, so a sha512 ``expected`` fails at commit.
"""

from __future__ import annotations

import contextlib
import io
import queue
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from .. import filters as _filters
from .. import labels as _labels
from ..content import Info, Status, WriterBase
from ..errors import (
    AlreadyExists,
    DigestMismatch,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from ._convert import to_datetime
from ._rpc import Connection, Service, map_error

__all__ = ["CHUNK", "WINDOW", "ContainerdContentStore", "ContainerdWriter"]

#: bytes per WRITE request (the size that measured best, see BENCHMARKS.md; the server limit is
#: 16 MiB)
CHUNK = 1 << 20
#: WRITE requests in flight before the writer waits for a response
WINDOW = 8

_STAT, _WRITE, _COMMIT = 0, 1, 2
# FailedPrecondition texts of containerd's size/digest checks at commit (local and metadata store)
_MISMATCH = ("unexpected commit", "failed size validation", "unexpected digest")
_END = object()


def _digest_or_none(s: str) -> Digest | None:
    return Digest(s) if s else None


def _validate_ref(ref: str) -> None:
    if not ref or not isinstance(ref, str):
        raise InvalidArgument("ingest ref '': must not be empty")
    if "\x00" in ref or len(ref) > 4096:
        raise InvalidArgument(f"ingest ref {ref[:80]!r}: invalid")


def _check_fieldpaths(fieldpaths: Sequence[str], new: Mapping[str, str]) -> None:
    """The embedded store's rules: ``labels`` or ``labels.<key>``, each label storable."""
    for p in fieldpaths:
        if p == "labels":
            _labels.validate_all(new)
        elif p.startswith("labels.") and len(p) > len("labels."):
            key = p[len("labels.") :]
            _labels.validate(key, new.get(key, ""))
        else:
            raise InvalidArgument(f"field path {p!r}: cannot update")
    if not fieldpaths:
        _labels.validate_all(new)


def _requests(q: queue.SimpleQueue[Any]) -> Iterator[Any]:
    """The request stream: what the writer queues, until the end marker."""
    while True:
        item = q.get()
        if item is _END:
            return
        yield item


class ContainerdWriter(WriterBase):
    """One ingest over one ``Write`` stream. Not thread-safe (one writer, one thread)."""

    def __init__(
        self,
        store: ContainerdContentStore,
        ref: str,
        *,
        total: int,
        expected: Digest | None,
        lease: str | None,
    ) -> None:
        super().__init__(ref, expected, lease)
        self._store = store
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._buf = bytearray()
        self._ended = False
        pb = store._conn.pb.content
        self._req = pb.WriteContentRequest
        # the request iterator must not reference the writer: an abandoned writer is then
        # collected, and __del__ ends its stream (and the daemon's ref lock)
        self._call = store._conn.bidi(
            "Content", "Write", _requests(self._q), namespace=store.namespace, lease=lease
        )
        try:
            first = self._req(action=_STAT, ref=ref, total=total, expected=expected or "")
            resp = self._roundtrip(first, what=f"ingest ref {ref}")
        except AlreadyExists:
            self._abandon()
            raise AlreadyExists(f"content {expected}: already exists") from None
        except BaseException:
            self._abandon()
            raise
        self._sent = int(resp.offset)  # bytes the daemon holds
        self._offset = self._sent  # bytes accepted from the caller (sent + buffered)
        self._total = int(resp.total) or total
        self._started = to_datetime(resp.started_at)

    # -- the stream ---------------------------------------------------------------------------
    def _recv(self, what: str) -> Any:
        try:
            resp = next(self._call)
        except StopIteration:
            self._fail()
            raise FailedPrecondition(f"{what}: the daemon ended the write stream") from None
        except Exception as exc:
            self._fail()
            raise map_error(exc, what, self._store.address) from None
        self._pending -= 1
        return resp

    def _send(self, req: Any, what: str) -> None:
        self._check_open()
        self._q.put(req)
        self._pending += 1
        while self._pending > WINDOW:
            self._recv(what)

    def _roundtrip(self, req: Any, what: str) -> Any:
        self._send(req, what)
        resp = None
        while self._pending:
            resp = self._recv(what)
        return resp

    def _fail(self) -> None:
        """The stream is over (error or end): stop feeding it and refuse further use."""
        self._closed = True
        if not self._ended:
            self._ended = True
            self._q.put(_END)

    def _abandon(self) -> None:
        self._fail()
        with contextlib.suppress(Exception):
            self._call.cancel()

    def _finish(self) -> None:
        """End our side and wait until the daemon has closed the ingest (lock released)."""
        self._closed = True
        if not self._ended:
            self._ended = True
            self._q.put(_END)
        with contextlib.suppress(Exception):
            for _ in self._call:  # the server repeats its last response, then ends
                pass

    def _flush(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self._send_data(data)

    def _send_data(self, data: bytes) -> None:
        req = self._req(action=_WRITE, offset=self._sent, data=data)
        self._sent += len(data)
        self._send(req, f"ingest ref {self._ref}")

    # -- Writer protocol ----------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._check_open()
        mv = memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        n = len(mv)
        if self._buf:
            take = min(CHUNK - len(self._buf), n)
            self._buf += mv[:take]
            mv = mv[take:]
            if len(self._buf) >= CHUNK:
                self._flush()
        while len(mv) >= CHUNK:
            self._send_data(bytes(mv[:CHUNK]))
            mv = mv[CHUNK:]
        if len(mv):
            self._buf += mv
        self._offset += n
        return n

    def _stat(self) -> Any:
        self._check_open()
        self._flush()
        return self._roundtrip(self._req(action=_STAT), f"ingest ref {self._ref}")

    def digest(self) -> Digest:
        """Digest of everything written so far (computed by the daemon)."""
        return Digest(self._stat().digest)

    def status(self) -> Status:
        resp = self._stat()
        return Status(
            ref=self._ref,
            offset=int(resp.offset),
            total=int(resp.total) or self._total,
            expected=self._expected,
            started_at=to_datetime(resp.started_at),
            updated_at=to_datetime(resp.updated_at),
        )

    def truncate(self, size: int) -> None:
        if size != 0:
            raise InvalidArgument(f"ingest ref {self._ref}: truncate only to 0 is supported")
        self._check_open()
        self._buf.clear()
        self._offset = self._sent = 0
        # a WRITE at offset 0 while the daemon holds data truncates the ingest
        self._send(self._req(action=_WRITE, offset=0), f"ingest ref {self._ref}")

    def _commit(self, size: int, expected: Digest | None, lbl: dict[str, str]) -> Digest:
        exp = Digest.parse(expected) if expected else self._expected
        what = f"ingest ref {self._ref}"
        try:
            if exp is None:
                # ask the daemon first: a collision then names the digest, as below
                exp = Digest(self._stat().digest)
            data = bytes(self._buf)
            self._buf.clear()
            req = self._req(
                action=_COMMIT,
                offset=self._sent,
                data=data,
                total=size,
                expected=exp,
                labels=lbl,
            )
            self._sent += len(data)
            resp = self._roundtrip(req, what)
        except AlreadyExists:
            self._finish()
            self._store._collided(exp, lbl, self._lease)
            raise AlreadyExists(f"content {exp}: already exists") from None
        except FailedPrecondition as err:
            self._finish()
            if any(m in str(err) for m in _MISMATCH):
                raise DigestMismatch(str(err)) from None
            raise
        except BaseException:
            self._finish()
            raise
        self._finish()
        return Digest(resp.digest)

    def close(self) -> None:
        """End the stream without committing: the daemon keeps the ingest for resumption."""
        if self._closed:
            self._finish()
            return
        try:
            self._flush()
            while self._pending:
                self._recv(f"ingest ref {self._ref}")
        except Error:
            pass
        self._finish()

    def __del__(self) -> None:
        if not getattr(self, "_ended", True):
            self._abandon()


class _BlobReader(io.RawIOBase):
    """Random access over ``Read``: one server stream from the current position onwards,
    restarted after a seek."""

    def __init__(self, store: ContainerdContentStore, dgst: Digest, size: int) -> None:
        super().__init__()
        self._store = store
        self._dgst = dgst
        self._size = size
        self._pos = 0
        self._stream: Iterator[Any] | None = None
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _stop(self) -> None:
        if self._stream is not None:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
            self._stream = None
        self._chunk = memoryview(b"")

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        if pos != self._pos:
            self._stop()
            self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._pos >= self._size:
            return 0
        out = memoryview(b).cast("B")
        while not self._chunk:
            if self._stream is None:
                req = self._store._conn.pb.content.ReadContentRequest(
                    digest=self._dgst, offset=self._pos
                )
                self._stream = self._store._call("Read", req, f"content {self._dgst}")
            try:
                resp = next(self._stream)
            except StopIteration:
                self._stream = None
                return 0
            self._chunk = memoryview(resp.data)
        n = min(len(out), len(self._chunk))
        out[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        self._pos += n
        return n

    def close(self) -> None:
        self._stop()
        super().close()


class ContainerdContentStore(Service):
    """The content store of one containerd namespace.

    ``lease``: the lease of writers opened without one (:meth:`Client.with_lease`).
    """

    SERVICE = "Content"

    def __init__(self, conn: Connection, namespace: str, *, lease: str | None = None) -> None:
        super().__init__(conn, namespace)
        self.lease = lease

    @property
    def address(self) -> str:
        return self._conn.address

    def _info(self, pb: Any) -> Info:
        return Info(
            digest=Digest(pb.digest),
            size=int(pb.size),
            created_at=to_datetime(pb.created_at),
            updated_at=to_datetime(pb.updated_at),
            labels=dict(pb.labels),
        )

    def _status(self, pb: Any) -> Status:
        return Status(
            ref=pb.ref,
            offset=int(pb.offset),
            total=int(pb.total),
            expected=_digest_or_none(pb.expected),
            started_at=to_datetime(pb.started_at),
            updated_at=to_datetime(pb.updated_at),
        )

    # -- Provider ---------------------------------------------------------------------------
    def open(self, desc: Descriptor | Digest) -> BinaryIO:
        """A seekable reader; NotFound at once if the blob is absent."""
        dgst = desc.digest if isinstance(desc, Descriptor) else desc
        info = self.info(dgst)
        return io.BufferedReader(_BlobReader(self, info.digest, info.size), buffer_size=CHUNK)

    def read_at(self, dgst: Digest, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (fewer at the end of the blob)."""
        dgst = Digest.parse(dgst)
        if n <= 0:
            return b""
        pb = self._conn.pb.content
        req = pb.ReadContentRequest(digest=dgst, offset=offset, size=n)
        parts = [r.data for r in self._call("Read", req, f"content {dgst}")]
        return b"".join(parts)[:n]

    # -- Ingester ---------------------------------------------------------------------------
    def writer(
        self, ref: str, *, total: int = 0, expected: Digest | None = None, lease: str | None = None
    ) -> ContainerdWriter:
        _validate_ref(ref)
        lease = lease or self.lease
        if expected is not None:
            expected = Digest.parse(expected)
        if total:
            # containerd restarts an ingest whose total differs; refuse instead, as pallet does
            try:
                st = self.status(ref)
            except NotFound:
                pass
            else:
                if st.total and st.total != total:
                    raise InvalidArgument(
                        f"ingest ref {ref}: provided total {total} differs from status {st.total}"
                    )
        return ContainerdWriter(self, ref, total=total, expected=expected, lease=lease)

    def _collided(self, dgst: Digest | None, lbl: Mapping[str, str], lease: str | None) -> None:
        """A commit found the blob present: lease it and merge labels, as pallet's store does."""
        if dgst is None:
            return
        if lease:
            pb = self._conn.pb.leases
            req = pb.AddResourceRequest(id=lease, resource=pb.Resource(id=dgst, type="content"))
            self._conn.call(
                "Leases", "AddResource", req, namespace=self.namespace, what=f"lease {lease}"
            )
        if lbl:
            with contextlib.suppress(NotFound):
                cur = self.info(dgst)
                self.update(
                    Info(
                        digest=dgst,
                        size=cur.size,
                        created_at=cur.created_at,
                        updated_at=cur.updated_at,
                        labels=lbl,
                    ),
                    [f"labels.{k}" for k in lbl],
                )

    # -- Manager ----------------------------------------------------------------------------
    def info(self, dgst: Digest) -> Info:
        dgst = Digest.parse(dgst)
        req = self._conn.pb.content.InfoRequest(digest=dgst)
        return self._info(self._call("Info", req, f"content {dgst}").info)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        dgst = Digest.parse(info.digest)
        _check_fieldpaths(fieldpaths, info.labels)
        pb = self._conn.pb.content

        req = pb.UpdateRequest(
            info=pb.Info(digest=dgst, labels=dict(info.labels)),
            update_mask=self._conn.field_mask(paths=list(fieldpaths)),
        )
        return self._info(self._call("Update", req, f"content {dgst}").info)

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        _filters.parse(filters)  # pallet's syntax errors, before the daemon's
        req = self._conn.pb.content.ListContentRequest(filters=list(filters))
        for resp in self._call("List", req, "content list"):
            for i in resp.info:
                yield self._info(i)

    def delete(self, dgst: Digest) -> None:
        dgst = Digest.parse(dgst)
        req = self._conn.pb.content.DeleteContentRequest(digest=dgst)
        self._call("Delete", req, f"content {dgst}")

    # -- IngestManager ----------------------------------------------------------------------
    def status(self, ref: str) -> Status:
        _validate_ref(ref)
        req = self._conn.pb.content.StatusRequest(ref=ref)
        return self._status(self._call("Status", req, f"ingest ref {ref}").status)

    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]:
        _filters.parse(filters)
        req = self._conn.pb.content.ListStatusesRequest(filters=list(filters))
        resp = self._call("ListStatuses", req, "ingest list")
        return [self._status(s) for s in resp.statuses]

    def abort(self, ref: str) -> None:
        _validate_ref(ref)
        req = self._conn.pb.content.AbortRequest(ref=ref)
        self._call("Abort", req, f"ingest ref {ref}")
