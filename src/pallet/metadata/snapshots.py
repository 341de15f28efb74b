"""Snapshot records in the metadata database (implements ``snapshots.native.Records``).

A record belongs to one snapshotter. Records created or committed under a lease are attached to
it (``snapshots/<snapshotter>`` resources), and the collector removes unreachable ones through
the snapshotter, children first.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import labels as _labels
from ..errors import AlreadyExists, FailedPrecondition, NotFound
from ..snapshots import Kind, Usage
from ..snapshots.native import Record

if TYPE_CHECKING:
    from .db import DB

__all__ = ["SnapshotTable"]


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


class SnapshotTable:
    def __init__(self, db: DB, snapshotter: str) -> None:
        self._db = db
        self._sn = snapshotter

    @staticmethod
    def _rec(row: tuple[Any, ...]) -> Record:
        (_, key, sid, parent, kind, lbl, created, updated, size, inodes, source) = row
        return Record(
            key=key,
            id=sid,
            parent=parent,
            kind=Kind(kind),
            labels=json.loads(lbl),
            created_at=datetime.fromisoformat(created),
            updated_at=datetime.fromisoformat(updated),
            size=size,
            inodes=inodes,
            source=source,
        )

    def _attach(self, lease: str | None, key: str) -> None:
        if lease:
            self._db.attach(lease, f"snapshots/{self._sn}", key)

    def get(self, key: str) -> Record | None:
        rows = self._db._read(
            "SELECT * FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, key)
        )
        return self._rec(rows[0]) if rows else None

    def create(self, rec: Record, lease: str | None) -> Record:
        now = _ts(datetime.now(UTC))
        with self._db._tx() as c:
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
                    now,
                    now,
                    rec.size,
                    rec.inodes,
                    rec.source,
                ),
            )
            self._attach(lease, rec.key)
        out = self.get(rec.key)
        assert out is not None
        return out

    def commit(
        self, key: str, name: str, labels: Mapping[str, str], usage: Usage, lease: str | None
    ) -> Record:
        now = _ts(datetime.now(UTC))
        with self._db._tx() as c:
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
                    now,
                    usage.size,
                    usage.inodes,
                    self._sn,
                    key,
                ),
            ).rowcount
            if n == 0:
                raise NotFound(f"snapshot {key}: no active snapshot")
            # the key's lease membership moves to the committed name
            c.execute(
                "UPDATE OR IGNORE lease_resources SET id=? WHERE type=? AND id=?",
                (name, f"snapshots/{self._sn}", key),
            )
            c.execute(
                "DELETE FROM lease_resources WHERE type=? AND id=?", (f"snapshots/{self._sn}", key)
            )
            self._attach(lease, name)
        out = self.get(name)
        assert out is not None
        return out

    def delete(self, key: str) -> None:
        with self._db._tx() as c:
            if c.execute(
                "SELECT 1 FROM snapshots WHERE snapshotter=? AND parent=? LIMIT 1", (self._sn, key)
            ).fetchone():
                raise FailedPrecondition(f"snapshot {key}: cannot remove, it has children")
            if (
                c.execute(
                    "DELETE FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, key)
                ).rowcount
                == 0
            ):
                raise NotFound(f"snapshot {key}: not found")
            c.execute(
                "DELETE FROM lease_resources WHERE type=? AND id=?", (f"snapshots/{self._sn}", key)
            )

    def update_labels(self, key: str, new: Mapping[str, str], fieldpaths: Sequence[str]) -> Record:
        now = _ts(datetime.now(UTC))
        with self._db._tx() as c:
            row = c.execute(
                "SELECT labels FROM snapshots WHERE snapshotter=? AND key=?", (self._sn, key)
            ).fetchone()
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            lbl = _labels.apply_fieldpaths(json.loads(row[0]), new, fieldpaths)
            c.execute(
                "UPDATE snapshots SET labels=?, updated=? WHERE snapshotter=? AND key=?",
                (json.dumps(lbl, sort_keys=True), now, self._sn, key),
            )
        out = self.get(key)
        assert out is not None
        return out

    def all(self) -> builtins.list[Record]:
        return [
            self._rec(r)
            for r in self._db._read(
                "SELECT * FROM snapshots WHERE snapshotter=? ORDER BY created, key", (self._sn,)
            )
        ]
