"""Content store interfaces (containerd ``core/content``).

Overall content lifecycle:

1. A producer opens a :class:`Writer` under a *ref* (``store.writer(ref, ...)``). Only one writer
   may hold a ref at a time, across threads and processes; a second one gets
   :class:`~pallet.errors.Unavailable` after a short wait.
2. It appends bytes. If it dies, the ingest stays on disk; opening a writer with the same ref
   later re-hashes what is there and continues at ``writer.offset`` (resume).
3. ``commit(size, expected)`` checks size and digest (mismatch: ``DigestMismatch``, data kept),
   makes the data durable and moves it atomically to ``blobs/<alg>/<hex>``. Committing a digest
   that already exists raises :class:`~pallet.errors.AlreadyExists`, which helpers treat as
   success. ``close()`` without commit keeps the ingest for resumption; ``abort(ref)`` drops it.
4. Committed blobs are immutable; their labels (garbage-collection edges, the uncompressed
   digest, distribution sources) are the only mutable part, updated by field path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Protocol, Self, runtime_checkable

from .. import labels as _labels
from ..errors import FailedPrecondition
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest

__all__ = [
    "IngestManager",
    "Info",
    "InfoProvider",
    "Ingester",
    "Manager",
    "Provider",
    "Status",
    "Store",
    "Writer",
    "WriterBase",
    "set_labels",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    digest: Digest
    size: int
    created_at: datetime
    updated_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    ref: str
    offset: int
    total: int
    expected: Digest | None
    started_at: datetime
    updated_at: datetime


class Writer(Protocol):
    """An open ingest. Use as a context manager: leaving it closes (not commits) the ingest."""

    @property
    def ref(self) -> str: ...
    @property
    def offset(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...
    def digest(self) -> Digest: ...
    def status(self) -> Status: ...
    def truncate(self, size: int) -> None: ...

    def commit(
        self,
        size: int = 0,
        expected: Digest | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> Digest:
        """Verify and publish the blob; returns its digest.

        Raises:
            DigestMismatch: size or digest differ (ingest kept).
            AlreadyExists: the blob is present already (ingest removed).
        """
        ...

    def close(self) -> None: ...
    def __enter__(self) -> Writer: ...
    def __exit__(self, *exc: object) -> None: ...


class WriterBase:
    """What every :class:`Writer` implementation shares: ``ref`` and ``offset``, refusing use
    after ``close``, ``commit``'s checks, and closing when a ``with`` block is left.

    A subclass keeps ``_offset`` and ``_closed`` up to date and implements the rest of
    :class:`Writer`, with ``_commit(size, expected, labels)`` doing ``commit``'s work once the
    writer is known open and the labels valid.
    """

    def __init__(self, ref: str, expected: Digest | None, lease: str | None) -> None:
        self._ref = ref
        self._expected = expected
        self._lease = lease
        self._offset = 0
        self._closed = False

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return self._offset

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"ingest ref {self._ref}: writer is closed")

    def commit(
        self,
        size: int = 0,
        expected: Digest | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> Digest:
        self._check_open()
        return self._commit(size, expected, _labels.validate_all(labels or {}))

    def _commit(self, size: int, expected: Digest | None, labels: dict[str, str]) -> Digest:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Provider(Protocol):
    def open(self, desc: Descriptor | Digest) -> BinaryIO:
        """Random-access (seekable) reader of a committed blob; needs the digest only."""
        ...


class Ingester(Protocol):
    def writer(
        self,
        ref: str,
        *,
        total: int = 0,
        expected: Digest | None = None,
        lease: str | None = None,
    ) -> Writer: ...


class InfoProvider(Protocol):
    def info(self, dgst: Digest) -> Info: ...


class Manager(InfoProvider, Protocol):
    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info: ...
    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]: ...
    def delete(self, dgst: Digest) -> None: ...


class IngestManager(Protocol):
    def status(self, ref: str) -> Status: ...
    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]: ...
    def abort(self, ref: str) -> None: ...


@runtime_checkable
class Store(Provider, Ingester, Manager, IngestManager, Protocol):
    """The whole content store."""


def set_labels(manager: Manager, desc: Descriptor, labels: Mapping[str, str]) -> Info:
    """Set ``labels`` on the blob ``desc``, keeping its others (one ``labels.<key>`` field path
    each, as containerd's ``content.Update`` takes them)."""
    now = datetime.now(UTC)
    return manager.update(
        Info(digest=desc.digest, size=desc.size, created_at=now, updated_at=now, labels=labels),
        [f"labels.{k}" for k in labels],
    )
