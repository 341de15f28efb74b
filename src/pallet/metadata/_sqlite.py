"""The metadata database: one SQLite file (WAL) beside the content store, and the GC lock.

This is the bottom of :mod:`pallet.metadata` (containerd's ``core/metadata/db.go``): it owns the
schema, the per-thread connections, transactions and ``<root>/gc.lock``. The tables above it
(:mod:`.content`, :mod:`.images`, :mod:`.leases`, :mod:`.snapshots`) and the collector
(:mod:`.gc`) each take a :class:`Database` and use only its public methods; none of them is
known here.

Concurrency: every thread gets its own connection (``sqlite3`` connections are not safe to share
while a transaction is open). Writes run in ``BEGIN IMMEDIATE`` transactions, so several processes
can share one store: SQLite serialises the writers, WAL lets readers go on. Garbage collection
takes ``gc.lock`` exclusively; publishing a blob takes it shared, so a collector never sees a blob
file whose record is not written yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..errors import NotFound

__all__ = ["Database", "decode_time", "delete_one", "encode_time", "now"]

# The on-disk format of ``metadata.db``; every statement is idempotent (``IF NOT EXISTS``).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs(
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS images(
    name TEXT PRIMARY KEY, target TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases(
    id TEXT PRIMARY KEY, labels TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lease_resources(
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    type TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY(lease, type, id));
CREATE INDEX IF NOT EXISTS lease_resources_by_id ON lease_resources(type, id);
CREATE TABLE IF NOT EXISTS snapshots(
    snapshotter TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, parent TEXT NOT NULL,
    kind TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL,
    updated TEXT NOT NULL, size INTEGER NOT NULL DEFAULT -1, inodes INTEGER NOT NULL DEFAULT -1,
    source TEXT NOT NULL DEFAULT '', PRIMARY KEY(snapshotter, key));
CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots(snapshotter, parent);
"""


def now() -> datetime:
    return datetime.now(UTC)


def encode_time(dt: datetime) -> str:
    """How every table stores a time: RFC 3339 in UTC (``isoformat``)."""
    return dt.astimezone(UTC).isoformat()


def decode_time(s: str) -> datetime:
    return datetime.fromisoformat(s)


def delete_one(c: sqlite3.Connection, sql: str, args: Sequence[object], missing: str) -> None:
    """Run ``sql``, a DELETE of one row; NotFound(``missing``) when it matched none."""
    if c.execute(sql, args).rowcount == 0:
        raise NotFound(missing)


class Database:
    """The database file at ``path`` (created with the schema if needed) and the GC lock file.

    Raises ``sqlite3.DatabaseError`` when the file is not a usable database; the store's opener
    turns that into a pallet error.
    """

    def __init__(self, path: Path, *, lock_path: Path) -> None:
        self.path = path
        self._lock_path = lock_path
        self._local = threading.local()
        # every thread's connection, so that close() reaches them all (they are opened with
        # check_same_thread=False, so closing one from another thread is allowed)
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        c = self._conn()
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            c.execute(stmt)

    def _conn(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA busy_timeout=60000")
            self._local.conn = c
            with self._conns_lock:
                self._conns.append(c)
        return c

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error).

        Nested use joins the outer transaction, so a table method that writes can run inside a
        caller's larger transaction and commit with it.
        """
        c = self._conn()
        if c.in_transaction:
            yield c
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for reads.

        Outside a transaction each statement sees the latest committed state (autocommit);
        inside :meth:`transaction` it sees that transaction's writes. Do not write through it.
        """
        yield self._conn()

    @contextlib.contextmanager
    def gc_lock(self, *, shared: bool) -> Iterator[None]:
        """``flock`` on ``gc.lock``: shared while a blob is published, exclusive while collecting.

        ``flock`` conflicts between open file descriptions, so it orders threads of one process
        as well as processes.
        """
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the connection of every thread that used the database.

        The connections are opened with ``check_same_thread=False``, so closing another
        thread's connection is allowed; the caller makes sure no other thread still uses the
        database. A thread's next use opens a new connection.
        """
        with self._conns_lock:
            conns, self._conns = self._conns, []
        self._local = threading.local()
        for c in conns:
            c.close()
