"""The metadata database: one SQLite file (WAL) beside the content store.

It records what the blob files on disk cannot say: blob labels and timestamps, images, leases and
their resources, and (through registered snapshotters) snapshot records. It implements
:class:`~pallet.content.local.ContentIndex`, :class:`~pallet.images.ImageStore` and
:class:`~pallet.leases.LeaseManager`, and :meth:`DB.collect` runs garbage collection.

Concurrency: every thread gets its own connection; writes run in ``BEGIN IMMEDIATE``
transactions, so several processes can share one store (SQLite serialises the writers, WAL lets
readers go on). Garbage collection takes ``<root>/gc.lock`` exclusively; publishing a blob takes it
shared (:meth:`guard`), so a collector never sees a blob file whose record is not written yet.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import labels as _labels
from ..content.local import LocalStore
from ..errors import AlreadyExists, InvalidArgument, NotFound, Unsupported
from ..images import Image, validate_image
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest

if TYPE_CHECKING:
    from .. import filters as _filters
    from ..leases import Lease, Resource
    from ..snapshots.native import NativeSnapshotter

__all__ = ["DB", "open_db"]

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


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def _target_json(d: Descriptor) -> str:
    return json.dumps(d.to_json(), sort_keys=True)


class DB:
    """Metadata for one store root. Build with :func:`open_db`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "metadata.db"
        self._local = threading.local()
        self.snapshotters: dict[str, NativeSnapshotter] = {}
        c = self._conn()
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            c.execute(stmt)
        self.content = LocalStore(root / "content", index=self)

    # -- plumbing ---------------------------------------------------------------------------
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
        return c

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        c = self._conn()
        if c.in_transaction:  # nested: join the outer transaction
            yield c
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn().execute(sql, args))

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextlib.contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    # -- ContentIndex -----------------------------------------------------------------------
    def guard(self) -> contextlib.AbstractContextManager[None]:
        return self._flock(fcntl.LOCK_SH)

    def _require_lease(self, c: sqlite3.Connection, lease: str) -> None:
        if c.execute("SELECT 1 FROM leases WHERE id=?", (lease,)).fetchone() is None:
            raise NotFound(f"lease {lease}: lease does not exist")

    def record_blob(
        self, dgst: Digest, size: int, labels: Mapping[str, str], lease: str | None
    ) -> None:
        now = _ts(_now())
        with self._tx() as c:
            row = c.execute("SELECT labels FROM blobs WHERE digest=?", (dgst,)).fetchone()
            merged = json.loads(row[0]) if row else {}
            merged.update(labels)
            c.execute(
                "INSERT INTO blobs(digest,size,created,updated,labels) VALUES(?,?,?,?,?) "
                "ON CONFLICT(digest) DO UPDATE SET size=excluded.size, updated=excluded.updated,"
                " labels=excluded.labels",
                (dgst, size, now, now, json.dumps(merged, sort_keys=True)),
            )
            if lease:
                self._require_lease(c, lease)
                c.execute(
                    "INSERT OR IGNORE INTO lease_resources VALUES(?,?,?)", (lease, "content", dgst)
                )

    def attach(self, lease: str, rtype: str, rid: str) -> None:
        with self._tx() as c:
            self._require_lease(c, lease)
            c.execute("INSERT OR IGNORE INTO lease_resources VALUES(?,?,?)", (lease, rtype, rid))

    def get_blob(self, dgst: Digest) -> tuple[dict[str, str], datetime, datetime] | None:
        rows = self._read("SELECT labels, created, updated FROM blobs WHERE digest=?", (dgst,))
        if not rows:
            return None
        lbl, created, updated = rows[0]
        return json.loads(lbl), _dt(created), _dt(updated)

    def update_labels(
        self, dgst: Digest, size: int, new: Mapping[str, str], fieldpaths: Sequence[str]
    ) -> None:
        now = _now()
        with self._tx() as c:
            row = c.execute("SELECT labels FROM blobs WHERE digest=?", (dgst,)).fetchone()
            labels = _labels.apply_fieldpaths(json.loads(row[0]) if row else {}, new, fieldpaths)
            c.execute(
                "INSERT INTO blobs(digest,size,created,updated,labels) VALUES(?,?,?,?,?) "
                "ON CONFLICT(digest) DO UPDATE SET updated=excluded.updated,"
                " labels=excluded.labels",
                (dgst, size, _ts(now), _ts(now), json.dumps(labels, sort_keys=True)),
            )

    def forget_blob(self, dgst: Digest) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM blobs WHERE digest=?", (dgst,))
            c.execute("DELETE FROM lease_resources WHERE type='content' AND id=?", (dgst,))

    def record_ingest(self, ref: str, lease: str | None) -> None:
        if lease:
            self.attach(lease, "ingests", ref)

    def forget_ingest(self, ref: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM lease_resources WHERE type='ingests' AND id=?", (ref,))

    # -- ImageStore -------------------------------------------------------------------------
    @staticmethod
    def _image(row: tuple[Any, ...]) -> Image:
        name, target, lbl, created, updated = row
        return Image(
            name=name,
            target=Descriptor.from_json(json.loads(target)),
            labels=json.loads(lbl),
            created_at=_dt(created),
            updated_at=_dt(updated),
        )

    def get(self, name: str) -> Image:
        rows = self._read("SELECT * FROM images WHERE name=?", (name,))
        if not rows:
            raise NotFound(f"image {name}: not found")
        return self._image(rows[0])

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        from .. import filters as _filters  # on first use: listing with filters

        flt = _filters.parse(filters)
        imgs = [self._image(r) for r in self._read("SELECT * FROM images ORDER BY name")]
        return [i for i in imgs if flt.match(_image_adaptor(i))]

    def create(self, image: Image) -> Image:
        validate_image(image)
        lbl = _labels.validate_all(image.labels)
        now = _now()
        # a given CreatedAt is kept (BuildKit sets it to SOURCE_DATE_EPOCH; containerd >= 1.7
        # keeps it too), else now
        created = image.created_at.astimezone(UTC) if image.created_at is not None else now
        with self._tx() as c:
            if c.execute("SELECT 1 FROM images WHERE name=?", (image.name,)).fetchone():
                raise AlreadyExists(f"image {image.name}: already exists")
            c.execute(
                "INSERT INTO images VALUES(?,?,?,?,?)",
                (
                    image.name,
                    _target_json(image.target),
                    json.dumps(lbl, sort_keys=True),
                    _ts(created),
                    _ts(now),
                ),
            )
        return replace(image, labels=lbl, created_at=created, updated_at=now)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        if not image.name:
            raise InvalidArgument("image name '': must not be empty")
        now = _now()
        with self._tx() as c:
            row = c.execute("SELECT * FROM images WHERE name=?", (image.name,)).fetchone()
            if row is None:
                raise NotFound(f"image {image.name}: not found")
            cur = self._image(row)
            target, lbl = cur.target, dict(cur.labels)
            if not fieldpaths:
                target, lbl = image.target, _labels.validate_all(image.labels)
            for p in fieldpaths:
                if p == "labels" or p.startswith("labels."):
                    lbl = _labels.apply_fieldpaths(lbl, image.labels, [p])
                elif p == "target":
                    target = image.target
                elif p == "annotations" or p.startswith("annotations."):
                    ann = _labels.apply_fieldpaths(
                        target.annotations, image.target.annotations, [p], prefix="annotations"
                    )
                    target = replace(target, annotations=ann)
                else:
                    raise InvalidArgument(f"field path {p!r}: cannot update image")
            new = Image(
                name=image.name,
                target=target,
                labels=lbl,
                created_at=cur.created_at,
                updated_at=now,
            )
            validate_image(new)
            c.execute(
                "UPDATE images SET target=?, labels=?, updated=? WHERE name=?",
                (_target_json(target), json.dumps(lbl, sort_keys=True), _ts(now), image.name),
            )
        return new

    def delete(self, name: str, *, sync: bool = False) -> None:
        with self._tx() as c:
            if c.execute("DELETE FROM images WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"image {name}: not found")
        if sync:
            self.collect()

    # -- LeaseManager -------------------------------------------------------------------------
    @property
    def leases(self) -> _Leases:
        return _Leases(self)

    @property
    def images(self) -> DB:
        return self

    def snapshotter(self, name: str = "native") -> NativeSnapshotter:
        """The directory snapshotter ``name`` under ``<root>/snapshots/<name>``."""
        sn = self.snapshotters.get(name)
        if sn is None:
            from ..snapshots.native import NativeSnapshotter
            from .snapshots import SnapshotTable

            sn = NativeSnapshotter(
                self.root / "snapshots" / name, SnapshotTable(self, name), name=name
            )
            self.snapshotters[name] = sn
        return sn

    # -- garbage collection -------------------------------------------------------------------
    def collect(self, **kw: Any) -> Any:
        from .gc import collect

        return collect(self, **kw)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._flock(fcntl.LOCK_EX)


class _Leases:
    """LeaseManager view of a :class:`DB`."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        if not lease_id:
            raise InvalidArgument("lease id '': must not be empty")
        lbl = _labels.validate_all(labels or {})
        now = _now()
        with self._db._tx() as c:
            if c.execute("SELECT 1 FROM leases WHERE id=?", (lease_id,)).fetchone():
                raise AlreadyExists(f"lease {lease_id}: already exists")
            c.execute(
                "INSERT INTO leases VALUES(?,?,?)",
                (lease_id, json.dumps(lbl, sort_keys=True), _ts(now)),
            )
        from ..leases import Lease

        return Lease(id=lease_id, created_at=now, labels=lbl)

    def delete(self, lease_id: str, *, sync: bool = False) -> None:
        with self._db._tx() as c:
            if c.execute("DELETE FROM leases WHERE id=?", (lease_id,)).rowcount == 0:
                raise NotFound(f"lease {lease_id}: not found")
        if sync:
            self._db.collect()

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        from .. import filters as _filters  # on first use: listing with filters
        from ..leases import Lease

        flt = _filters.parse(filters)
        out = []
        for lid, lbl, created in self._db._read("SELECT * FROM leases ORDER BY created, id"):
            lease = Lease(id=lid, labels=json.loads(lbl), created_at=_dt(created))
            if flt.match(_lease_adaptor(lease)):
                out.append(lease)
        return out

    @staticmethod
    def _check_type(r: Resource) -> None:
        from ..leases import RESOURCE_TYPES

        if r.type not in RESOURCE_TYPES and not (
            r.type.startswith("snapshots/") and len(r.type) > len("snapshots/")
        ):
            raise Unsupported(f"lease resource type {r.type!r}: not supported")
        if not r.id:
            raise InvalidArgument("lease resource id '': must not be empty")
        if r.type == "content":
            Digest.parse(r.id)

    def add_resource(self, lease_id: str, resource: Resource) -> None:
        self._check_type(resource)
        self._db.attach(lease_id, resource.type, resource.id)

    def delete_resource(self, lease_id: str, resource: Resource) -> None:
        self._check_type(resource)
        with self._db._tx() as c:
            self._db._require_lease(c, lease_id)
            c.execute(
                "DELETE FROM lease_resources WHERE lease=? AND type=? AND id=?",
                (lease_id, resource.type, resource.id),
            )

    def list_resources(self, lease_id: str) -> builtins.list[Resource]:
        with self._db._tx() as c:
            self._db._require_lease(c, lease_id)
            rows = list(
                c.execute(
                    "SELECT type, id FROM lease_resources WHERE lease=? ORDER BY type, id",
                    (lease_id,),
                )
            )
        from ..leases import Resource

        return [Resource(t, i) for t, i in rows]


def _labels_field(lbl: Mapping[str, str], path: Sequence[str]) -> tuple[str, bool]:
    key = ".".join(path)
    v = lbl.get(key)
    return (v, True) if v is not None else ("", False)


def _image_adaptor(img: Image) -> _filters.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        p = list(path)
        if p == ["name"]:
            return img.name, True
        if p in (["target", "digest"], ["digest"]):
            return str(img.target.digest), True
        if p in (["target", "mediatype"], ["target", "mediaType"]):
            return img.target.media_type, True
        if p and p[0] == "labels" and len(p) > 1:
            return _labels_field(img.labels, p[1:])
        if p and p[0] == "annotations" and len(p) > 1:
            return _labels_field(img.target.annotations, p[1:])
        return "", False

    return field


def _lease_adaptor(lease: Lease) -> _filters.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        p = list(path)
        if p == ["id"]:
            return lease.id, True
        if p and p[0] == "labels" and len(p) > 1:
            return _labels_field(lease.labels, p[1:])
        return "", False

    return field


def open_db(root: str | os.PathLike[str]) -> DB:
    """Open (creating if needed) the store at ``root``."""
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"store root {path}: cannot create: {exc.strerror}") from exc
    if not path.is_dir():
        raise InvalidArgument(f"store root {path}: not a directory")
    try:
        return DB(path)
    except sqlite3.DatabaseError as exc:
        raise InvalidArgument(f"store root {path}: metadata database unusable: {exc}") from exc
