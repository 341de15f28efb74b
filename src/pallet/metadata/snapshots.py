"""Snapshot records in the metadata database (containerd ``core/metadata/snapshot.go``).

Owns the ``snapshots`` table. :class:`SnapshotTable` is one snapshotter's
:class:`~pallet.snapshots.native.Records`. Records created or committed under a lease are attached
to it (``snapshots/<snapshotter>`` resources) in the same transaction, and the collector removes
unreachable ones through the snapshotter, children first.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from .. import labels as _labels
from ..errors import AlreadyExists, FailedPrecondition, NotFound
from ..snapshots import Kind, Usage
from ..snapshots.native import Record
from ._sqlite import Database, decode_time, delete_one, encode_time, now
from .leases import add_resource, drop_resource, rename_resource

__all__ = ["SnapshotTable"]


class SnapshotTable:
    """The records of snapshotter ``snapshotter`` in ``db``'s ``snapshots`` table."""

    def __init__(self, db: Database, snapshotter: str) -> None:
        self._db = db
        self._sn = snapshotter
        self._rtype = f"snapshots/{snapshotter}"  # its lease resource type

    @staticmethod
    def _rec(row: tuple[Any, ...]) -> Record:
        (_, key, sid, parent, kind, lbl, created, updated, size, inodes, source) = row
        return Record(
            key=key,
            id=sid,
            parent=parent,
            kind=Kind(kind),
            labels=json.loads(lbl),
            created_at=decode_time(created),
            updated_at=decode_time(updated),
            size=size,
            inodes=inodes,
            source=source,
        )

    def _attach(self, c: sqlite3.Connection, lease: str | None, key: str) -> None:
        if lease:
            add_resource(c, lease, self._rtype, key)

    def get(self, key: str) -> Record | None:
        with self._db.read() as c:
            row = c.execute(
                "SELECT * FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, key)
            ).fetchone()
        return self._rec(row) if row is not None else None

    def create(self, rec: Record, lease: str | None) -> Record:
        ts = encode_time(now())
        with self._db.transaction() as c:
            if c.execute(
                "SELECT 1 FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, rec.key)
            ).fetchone():
                raise AlreadyExists(f"snapshot {rec.key}: already exists")
            c.execute(
                "INSERT INTO snapshots VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self._sn,
                    rec.key,
                    rec.id,
                    rec.parent,
                    str(rec.kind),
                    json.dumps(dict(rec.labels), sort_keys=True),
                    ts,
                    ts,
                    rec.size,
                    rec.inodes,
                    rec.source,
                ),
            )
            self._attach(c, lease, rec.key)
        out = self.get(rec.key)
        assert out is not None
        return out

    def commit(
        self, key: str, name: str, labels: Mapping[str, str], usage: Usage, lease: str | None
    ) -> Record:
        ts = encode_time(now())
        with self._db.transaction() as c:
            if c.execute(
                "SELECT 1 FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, name)
            ).fetchone():
                raise AlreadyExists(f"snapshot {name}: already exists")
            n = c.execute(
                "UPDATE snapshots SET key=?, kind=?, labels=?, updated=?, size=?, inodes=? "
                "WHERE snapshotter=? AND key=? AND kind='active'",
                (
                    name,
                    str(Kind.COMMITTED),
                    json.dumps(dict(labels), sort_keys=True),
                    ts,
                    usage.size,
                    usage.inodes,
                    self._sn,
                    key,
                ),
            ).rowcount
            if n == 0:
                raise NotFound(f"snapshot {key}: no active snapshot")
            rename_resource(c, self._rtype, key, name)
            self._attach(c, lease, name)
        out = self.get(name)
        assert out is not None
        return out

    def delete(self, key: str) -> None:
        with self._db.transaction() as c:
            if c.execute(
                "SELECT 1 FROM snapshots WHERE snapshotter=? AND parent=? LIMIT 1", (self._sn, key)
            ).fetchone():
                raise FailedPrecondition(f"snapshot {key}: cannot remove, it has children")
            sql = "DELETE FROM snapshots WHERE snapshotter=? AND key=?"
            delete_one(c, sql, (self._sn, key), f"snapshot {key}: not found")
            drop_resource(c, self._rtype, key)

    def update_labels(self, key: str, new: Mapping[str, str], fieldpaths: Sequence[str]) -> Record:
        ts = encode_time(now())
        with self._db.transaction() as c:
            row = c.execute(
                "SELECT labels FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, key)
            ).fetchone()
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            lbl = _labels.apply_fieldpaths(json.loads(row[0]), new, fieldpaths)
            c.execute(
                "UPDATE snapshots SET labels=?, updated=? WHERE snapshotter=? AND key=?",
                (json.dumps(lbl, sort_keys=True), ts, self._sn, key),
            )
        out = self.get(key)
        assert out is not None
        return out

    def all(self) -> builtins.list[Record]:
        with self._db.read() as c:
            rows = c.execute(
                "SELECT * FROM snapshots WHERE snapshotter=? ORDER BY created, key", (self._sn,)
            ).fetchall()
        return [self._rec(r) for r in rows]
