"""Leases in the metadata database (containerd ``core/metadata/leases.go``).

Owns the ``leases`` and ``lease_resources`` tables. :class:`LeaseTable` is the
:class:`~pallet.leases.LeaseManager`; the module functions add and drop lease resources inside a
caller's transaction, so that the content index and the snapshot table attach what they write
in the same transaction that writes it.

A resource is ``(type, id)``: ``content`` (a digest), ``ingests`` (an ingest ref) or
``snapshots/<snapshotter>`` (a snapshot key). Deleting a lease deletes its resources (foreign key
``ON DELETE CASCADE``); what they held is left for the collector.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence

from .. import labels as _labels
from ..errors import AlreadyExists, InvalidArgument, NotFound, Unsupported
from ..leases import RESOURCE_TYPES, Lease, Resource
from ..oci.digest import Digest
from ._sqlite import Database, decode_time, delete_one, encode_time, now

__all__ = ["LeaseTable", "add_resource", "drop_resource", "rename_resource", "require_lease"]


def require_lease(c: sqlite3.Connection, lease: str) -> None:
    """NotFound unless ``lease`` exists."""
    if c.execute("SELECT 1 FROM leases WHERE id=?", (lease,)).fetchone() is None:
        raise NotFound(f"lease {lease}: lease does not exist")


def add_resource(c: sqlite3.Connection, lease: str, rtype: str, rid: str) -> None:
    """Attach ``(rtype, rid)`` to ``lease`` (NotFound if the lease does not exist)."""
    require_lease(c, lease)
    c.execute("INSERT OR IGNORE INTO lease_resources VALUES(?,?,?)", (lease, rtype, rid))


def drop_resource(c: sqlite3.Connection, rtype: str, rid: str) -> None:
    """Detach ``(rtype, rid)`` from every lease (the resource is gone)."""
    c.execute("DELETE FROM lease_resources WHERE type=? AND id=?", (rtype, rid))


def rename_resource(c: sqlite3.Connection, rtype: str, old: str, new: str) -> None:
    """Each lease holding ``(rtype, old)`` holds ``(rtype, new)`` instead (a committed snapshot)."""
    c.execute("UPDATE OR IGNORE lease_resources SET id=? WHERE type=? AND id=?", (new, rtype, old))
    drop_resource(c, rtype, old)  # left by leases that already held ``new``


class LeaseTable:
    """The :class:`~pallet.leases.LeaseManager` of a store.

    ``collect`` runs garbage collection; ``delete(..., sync=True)`` calls it.
    """

    def __init__(self, db: Database, *, collect: Callable[[], object]) -> None:
        self._db = db
        self._collect = collect

    def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        if not lease_id:
            raise InvalidArgument("lease id '': must not be empty")
        lbl = _labels.validate_all(labels or {})
        created = now()
        with self._db.transaction() as c:
            if c.execute("SELECT 1 FROM leases WHERE id=?", (lease_id,)).fetchone():
                raise AlreadyExists(f"lease {lease_id}: already exists")
            c.execute(
                "INSERT INTO leases VALUES(?,?,?)",
                (lease_id, json.dumps(lbl, sort_keys=True), encode_time(created)),
            )
        return Lease(id=lease_id, created_at=created, labels=lbl)

    def delete(self, lease_id: str, *, sync: bool = False) -> None:
        with self._db.transaction() as c:
            sql = "DELETE FROM leases WHERE id=?"
            delete_one(c, sql, (lease_id,), f"lease {lease_id}: not found")
        if sync:
            self._collect()

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        from .. import filters as _filters  # on first use: only listing needs the parser

        flt = _filters.parse(filters)
        with self._db.read() as c:
            rows = c.execute("SELECT * FROM leases ORDER BY created, id").fetchall()
        out = []
        for lid, lbl, created in rows:
            lease = Lease(id=lid, labels=json.loads(lbl), created_at=decode_time(created))
            if flt.match(_lease_field(lease)):
                out.append(lease)
        return out

    def add_resource(self, lease_id: str, resource: Resource) -> None:
        _check_resource(resource)
        with self._db.transaction() as c:
            add_resource(c, lease_id, resource.type, resource.id)

    def delete_resource(self, lease_id: str, resource: Resource) -> None:
        _check_resource(resource)
        with self._db.transaction() as c:
            require_lease(c, lease_id)
            c.execute(
                "DELETE FROM lease_resources WHERE lease=? AND type=? AND id=?",
                (lease_id, resource.type, resource.id),
            )

    def list_resources(self, lease_id: str) -> builtins.list[Resource]:
        with self._db.transaction() as c:
            require_lease(c, lease_id)
            rows = c.execute(
                "SELECT type, id FROM lease_resources WHERE lease=? ORDER BY type, id",
                (lease_id,),
            ).fetchall()
        return [Resource(t, i) for t, i in rows]


def _check_resource(r: Resource) -> None:
    if r.type not in RESOURCE_TYPES and not (
        r.type.startswith("snapshots/") and len(r.type) > len("snapshots/")
    ):
        raise Unsupported(f"lease resource type {r.type!r}: not supported")
    if not r.id:
        raise InvalidArgument("lease resource id '': must not be empty")
    if r.type == "content":
        Digest.parse(r.id)


def _lease_field(lease: Lease) -> Callable[[Sequence[str]], tuple[str, bool]]:
    """The filter adaptor of a lease: ``id`` and ``labels.<key>``."""

    def field(path: Sequence[str]) -> tuple[str, bool]:
        p = list(path)
        if p == ["id"]:
            return lease.id, True
        if p and p[0] == "labels" and len(p) > 1:
            v = lease.labels.get(".".join(p[1:]))
            return (v, True) if v is not None else ("", False)
        return "", False

    return field
