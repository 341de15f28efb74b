"""Blob records in the metadata database (containerd ``core/metadata/content.go``).

Owns the ``blobs`` table: what the blob files of a :class:`~pallet.content.local.LocalStore`
cannot say about themselves, their labels and timestamps. :class:`BlobIndex` is the store's
:class:`~pallet.content.local.ContentIndex`. Blobs and ingests written under a lease are attached
to it (``content`` and ``ingests`` resources) in the transaction that records them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from .. import labels as _labels
from ..oci.digest import Digest
from ._sqlite import Database, decode_time, encode_time, now
from .leases import add_resource, drop_resource

__all__ = ["BlobIndex"]


class BlobIndex:
    """The :class:`~pallet.content.local.ContentIndex` over ``db``'s ``blobs`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def guard(self) -> contextlib.AbstractContextManager[None]:
        return self._db.gc_lock(shared=True)

    def record_blob(
        self, dgst: Digest, size: int, labels: Mapping[str, str], lease: str | None
    ) -> None:
        ts = encode_time(now())
        with self._db.transaction() as c:
            row = c.execute("SELECT labels FROM blobs WHERE digest=?", (dgst,)).fetchone()
            merged = json.loads(row[0]) if row else {}
            merged.update(labels)
            c.execute(
                "INSERT INTO blobs(digest,size,created,updated,labels) VALUES(?,?,?,?,?) "
                "ON CONFLICT(digest) DO UPDATE SET size=excluded.size, updated=excluded.updated,"
                " labels=excluded.labels",
                (dgst, size, ts, ts, json.dumps(merged, sort_keys=True)),
            )
            if lease:
                add_resource(c, lease, "content", dgst)

    def attach(self, lease: str, rtype: str, rid: str) -> None:
        with self._db.transaction() as c:
            add_resource(c, lease, rtype, rid)

    def get_blob(self, dgst: Digest) -> tuple[dict[str, str], datetime, datetime] | None:
        with self._db.read() as c:
            row = c.execute(
                "SELECT labels, created, updated FROM blobs WHERE digest=?", (dgst,)
            ).fetchone()
        if row is None:
            return None
        lbl, created, updated = row
        return json.loads(lbl), decode_time(created), decode_time(updated)

    def update_labels(
        self, dgst: Digest, size: int, new: Mapping[str, str], fieldpaths: Sequence[str]
    ) -> None:
        ts = encode_time(now())
        with self._db.transaction() as c:
            row = c.execute("SELECT labels FROM blobs WHERE digest=?", (dgst,)).fetchone()
            labels = _labels.apply_fieldpaths(json.loads(row[0]) if row else {}, new, fieldpaths)
            c.execute(
                "INSERT INTO blobs(digest,size,created,updated,labels) VALUES(?,?,?,?,?) "
                "ON CONFLICT(digest) DO UPDATE SET updated=excluded.updated,"
                " labels=excluded.labels",
                (dgst, size, ts, ts, json.dumps(labels, sort_keys=True)),
            )

    def forget_blob(self, dgst: Digest) -> None:
        with self._db.transaction() as c:
            c.execute("DELETE FROM blobs WHERE digest=?", (dgst,))
            drop_resource(c, "content", dgst)

    def record_ingest(self, ref: str, lease: str | None) -> None:
        if lease:
            self.attach(lease, "ingests", ref)

    def forget_ingest(self, ref: str) -> None:
        with self._db.transaction() as c:
            drop_resource(c, "ingests", ref)
