"""The embedded store: a content store, its metadata database and snapshotters under one root.

:class:`Store` is the facade that composes the pieces below it, as containerd composes
``core/metadata``'s ``DB`` with the stores built on it::

    <root>/content/            blob files and ingests (:class:`~pallet.content.local.LocalStore`)
    <root>/metadata.db         SQLite (WAL): blob labels, images, leases, snapshot records
    <root>/gc.lock             flock: exclusive while collecting, shared while publishing a blob
    <root>/snapshots/<name>/   the directories of the native snapshotter ``<name>``

Imports run one way, each module using only the public names of those under it::

    _sqlite (Database)  <-  leases  <-  content, images, snapshots  <-  gc, fsck  <-  store

``store.content``, ``store.images`` and ``store.leases`` have the same surface as a containerd
client's, so code written against the protocols takes either.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..content.local import LocalStore
from ..errors import InvalidArgument
from ..oci.digest import Digest
from . import fsck as _fsck
from . import gc as _gc
from ._sqlite import Database
from .content import BlobIndex
from .fsck import Problem
from .gc import GCStats
from .images import ImageTable
from .leases import LeaseTable

if TYPE_CHECKING:
    # imported by snapshotter() on first use: the snapshot package is the largest import here and
    # the commands that never unpack (push, images, content) should not pay for it
    from ..snapshots.native import NativeSnapshotter

__all__ = ["Store", "open_store"]


class Store:
    """The store at ``root`` (an existing directory). Build with :func:`open_store`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.database = Database(root / "metadata.db", lock_path=root / "gc.lock")
        self.content = LocalStore(root / "content", index=BlobIndex(self.database))
        self.images = ImageTable(self.database, collect=self.collect)
        self.leases = LeaseTable(self.database, collect=self.collect)
        self._snapshotters: dict[str, NativeSnapshotter] = {}

    def snapshotter(self, name: str = "native") -> NativeSnapshotter:
        """The directory snapshotter ``name`` under ``<root>/snapshots/<name>``."""
        sn = self._snapshotters.get(name)
        if sn is None:
            from ..snapshots.native import NativeSnapshotter
            from .snapshots import SnapshotTable

            sn = NativeSnapshotter(
                self.root / "snapshots" / name, SnapshotTable(self.database, name), name=name
            )
            self._snapshotters[name] = sn
        return sn

    def _remove_snapshot(self, snapshotter: str, key: str) -> None:
        self.snapshotter(snapshotter).gc_remove(key)

    def collect(
        self,
        *,
        now: datetime | None = None,
        ingest_grace: timedelta = timedelta(hours=24),
        dry_run: bool = False,
    ) -> GCStats:
        """Collect garbage (:func:`pallet.metadata.gc.collect`)."""
        return _gc.collect(
            self.database,
            self.content,
            self._remove_snapshot,
            now=now,
            ingest_grace=ingest_grace,
            dry_run=dry_run,
        )

    def fsck(
        self, *, repair: bool = False, on_blob: Callable[[Digest], None] | None = None
    ) -> list[Problem]:
        """Check the store (:func:`pallet.metadata.fsck.fsck`)."""
        return _fsck.fsck(self.database, self.content, self.images, repair=repair, on_blob=on_blob)

    def close(self) -> None:
        """Close this thread's database connection."""
        self.database.close()


def open_store(root: str | os.PathLike[str]) -> Store:
    """Open (creating if needed) the store at ``root``."""
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"store root {path}: cannot create: {exc.strerror}") from exc
    if not path.is_dir():
        raise InvalidArgument(f"store root {path}: not a directory")
    try:
        return Store(path)
    except sqlite3.DatabaseError as exc:
        raise InvalidArgument(f"store root {path}: metadata database unusable: {exc}") from exc
