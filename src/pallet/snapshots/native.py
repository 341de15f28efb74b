"""Copy-based directory snapshotter (containerd's ``native``), with no mounts and no root needed.

Every snapshot is a directory ``<root>/<id>``; ``prepare`` copies the parent's whole tree into a
new one (hardlinks, owners, xattrs and times kept), ``commit`` only flips the record, and
``view`` of a committed snapshot binds the parent's directory read-only (no copy).

Records (key, parent, kind, labels, usage) live in a :class:`Records` store — the SQLite metadata
database in pallet — so that leases and garbage collection see them.

pallet extension: :meth:`NativeSnapshotter.commit_dir` registers a user's directory as a
committed snapshot *without copying it*: it can be the upper (or lower) side of a diff, so
exporting a 1 GB directory does not first write 1 GB of copies. Such a snapshot's directory is
never written or deleted by pallet.

pallet extension: :meth:`NativeSnapshotter.commit_lazy` records a committed snapshot that has a
layer blob (its labels say which) but no directory, BuildKit's *lazy* ref: a base image's layers
are exported by reusing their blobs without ever unpacking them. Such a snapshot cannot be read
(:meth:`~NativeSnapshotter.path`) or used as the parent of ``prepare``/``view``; unpack the
image's layers (``rootfs.apply_layers``) when its files are needed.
"""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .. import filters as _filters
from .. import labels as _labels
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..mount import Mount
from . import Info, Kind, Usage
from ._copy import copy_tree

__all__ = ["NativeSnapshotter", "Record", "Records"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    key: str
    id: str
    parent: str
    kind: Kind
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    size: int = -1
    inodes: int = -1
    source: str = ""  # an external directory (commit_dir), else empty

    def info(self) -> Info:
        return Info(
            name=self.key,
            parent=self.parent,
            kind=self.kind,
            labels=self.labels,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class Records(Protocol):
    """Where snapshot records live. Every method is atomic."""

    def get(self, key: str) -> Record | None: ...
    def create(self, rec: Record, lease: str | None) -> Record:
        """Insert; AlreadyExists if the key is taken."""
        ...

    def commit(
        self, key: str, name: str, labels: Mapping[str, str], usage: Usage, lease: str | None
    ) -> Record:
        """Rename an active record to a committed ``name``; AlreadyExists if taken."""
        ...

    def delete(self, key: str) -> None:
        """Delete; FailedPrecondition if it has children, NotFound if absent."""
        ...

    def update_labels(
        self, key: str, new: Mapping[str, str], fieldpaths: Sequence[str]
    ) -> Record: ...
    def all(self) -> builtins.list[Record]: ...


def _validate_key(key: str) -> None:
    if not key or "\x00" in key:
        raise InvalidArgument(f"snapshot key {key!r}: invalid")


def _usage(path: str) -> Usage:
    size = inodes = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            inodes += 1
            size += st.st_blocks * 512
    return Usage(size, inodes + 1)


class NativeSnapshotter:
    """Directory snapshots under ``root``; records in ``records``."""

    def __init__(
        self, root: str | os.PathLike[str], records: Records, *, name: str = "native"
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.records = records
        self.name = name

    def _dir(self, rec: Record) -> str:
        return rec.source or str(self.root / rec.id)

    def _get(self, key: str) -> Record:
        _validate_key(key)
        rec = self.records.get(key)
        if rec is None:
            raise NotFound(f"snapshot {key}: not found")
        return rec

    def path(self, key: str) -> str:
        """The directory holding snapshot ``key`` (read it; write it only if active).

        Raises:
            NotFound: no such snapshot.
            FailedPrecondition: the snapshot is lazy (a blob, no directory).
        """
        rec = self._get(key)
        if _labels.LAZY in rec.labels:
            raise FailedPrecondition(f"snapshot {key}: lazy (its layer is not unpacked)")
        return self._dir(rec)

    # -- queries ----------------------------------------------------------------------------
    def stat(self, key: str) -> Info:
        return self._get(key).info()

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        self._get(info.name)
        for p in fieldpaths:
            if p != "labels" and not p.startswith("labels."):
                raise InvalidArgument(f"field path {p!r}: cannot update snapshot")
        return self.records.update_labels(info.name, info.labels, fieldpaths).info()

    def usage(self, key: str) -> Usage:
        rec = self._get(key)
        if rec.kind == Kind.COMMITTED and rec.size >= 0:
            return Usage(rec.size, rec.inodes)
        return _usage(self._dir(rec))

    def mounts(self, key: str) -> builtins.list[Mount]:
        rec = self._get(key)
        if rec.kind == Kind.COMMITTED:
            raise FailedPrecondition(f"snapshot {key}: mounts of a committed snapshot")
        ro = rec.kind == Kind.VIEW
        return [Mount(type="bind", source=self._dir(rec), options=("rbind", "ro" if ro else "rw"))]

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        flt = _filters.parse(filters)
        for rec in self.records.all():
            info = rec.info()
            if flt.match(_adaptor(info)):
                yield info

    # -- changes ----------------------------------------------------------------------------
    def _parent(self, parent: str) -> Record | None:
        if not parent:
            return None
        prec = self.records.get(parent)
        if prec is None:
            raise NotFound(f"snapshot {parent}: parent not found")
        if prec.kind != Kind.COMMITTED:
            raise InvalidArgument(f"snapshot {parent}: parent is not committed")
        return prec

    def _new_id(self) -> str:
        return f"{time.time_ns():x}-{secrets.token_hex(4)}"

    def prepare(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels, lease)

    def view(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels, lease)

    def _create(
        self, kind: Kind, key: str, parent: str, labels: Mapping[str, str] | None, lease: str | None
    ) -> builtins.list[Mount]:
        _validate_key(key)
        lbl = _labels.validate_all(labels or {})
        if self.records.get(key) is not None:
            raise AlreadyExists(f"snapshot {key}: already exists")
        prec = self._parent(parent)
        if prec is not None and _labels.LAZY in prec.labels:
            raise FailedPrecondition(f"snapshot {parent}: lazy parent (its layer is not unpacked)")
        sid = self._new_id()
        if kind == Kind.VIEW and prec is not None:
            # a view binds the parent read-only: nothing to copy
            rec = Record(
                key=key, id=sid, parent=parent, kind=kind, labels=lbl, source=self._dir(prec)
            )
            self.records.create(rec, lease)
            return self.mounts(key)
        tmp = self.root / f"new-{sid}"
        tmp.mkdir(mode=0o755)
        try:
            if prec is not None:
                copy_tree(self._dir(prec), str(tmp))
            os.rename(tmp, self.root / sid)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            self.records.create(
                Record(key=key, id=sid, parent=parent, kind=kind, labels=lbl), lease
            )
        except BaseException:
            shutil.rmtree(self.root / sid, ignore_errors=True)
            raise
        return self.mounts(key)

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> None:
        _validate_key(name)
        rec = self._get(key)
        if rec.kind != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key}: only active snapshots can be committed")
        lbl = _labels.validate_all({**rec.labels, **(labels or {})})
        if self.records.get(name) is not None:
            raise AlreadyExists(f"snapshot {name}: already exists")
        self.records.commit(key, name, lbl, _usage(self._dir(rec)), lease)

    def commit_dir(
        self,
        name: str,
        path: str | os.PathLike[str],
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> None:
        """Register the directory ``path`` as committed snapshot ``name`` without copying it."""
        _validate_key(name)
        p = Path(path)
        if not p.is_dir():
            raise InvalidArgument(f"directory {path}: not a directory")
        self._parent(parent)
        lbl = _labels.validate_all(labels or {})
        self.records.create(
            Record(
                key=name,
                id=self._new_id(),
                parent=parent,
                kind=Kind.COMMITTED,
                labels=lbl,
                source=str(p.resolve()),
            ),
            lease,
        )

    def commit_lazy(
        self,
        name: str,
        parent: str = "",
        *,
        labels: Mapping[str, str],
        lease: str | None = None,
    ) -> None:
        """Record committed snapshot ``name`` that has a layer blob but no directory.

        ``labels`` must name the blob (:data:`~pallet.labels.LAYER_BLOB`, ``LAYER_DIFF_ID``,
        ``LAYER_MEDIA_TYPE``, ``LAYER_SIZE``); :data:`~pallet.labels.LAZY` is added.

        Raises:
            InvalidArgument: a label naming the blob is missing.
        """
        _validate_key(name)
        for k in (_labels.LAYER_BLOB, _labels.LAYER_DIFF_ID, _labels.LAYER_MEDIA_TYPE):
            if not labels.get(k):
                raise InvalidArgument(f"snapshot {name}: lazy snapshot without label {k}")
        self._parent(parent)
        lbl = _labels.validate_all({**labels, _labels.LAZY: "true"})
        if self.records.get(name) is not None:
            raise AlreadyExists(f"snapshot {name}: already exists")
        self.records.create(
            Record(key=name, id=self._new_id(), parent=parent, kind=Kind.COMMITTED, labels=lbl),
            lease,
        )

    def remove(self, key: str) -> None:
        rec = self._get(key)
        self.records.delete(key)
        self._remove_dir(rec)

    def _remove_dir(self, rec: Record) -> None:
        if rec.source:
            return  # external directory or a view: not ours to delete
        d = self.root / rec.id
        if d.exists():
            trash = self.root / f"rm-{rec.id}"
            os.rename(d, trash)
            _rmtree(trash)

    def gc_remove(self, key: str) -> None:
        """Remove for the garbage collector (children are removed first)."""
        self.remove(key)

    def orphans(self) -> builtins.list[Path]:
        """Directories with no record (a crash between copy and record), for cleanup."""
        ids = {r.id for r in self.records.all()}
        return [p for p in self.root.iterdir() if p.name not in ids]

    def cleanup(self) -> None:
        for p in self.orphans():
            _rmtree(p)


def _rmtree(p: Path) -> None:
    """Remove a tree, including read-only directories a layer may have made (mode 0555)."""
    for dirpath, dirnames, _ in os.walk(p):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(p, ignore_errors=True)


def _adaptor(info: Info) -> _filters.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        p = list(path)
        if p == ["name"]:
            return info.name, True
        if p == ["parent"]:
            return info.parent, bool(info.parent)
        if p == ["kind"]:
            return str(info.kind), True
        if p and p[0] == "labels" and len(p) > 1:
            v = info.labels.get(".".join(p[1:]))
            return (v, True) if v is not None else ("", False)
        return "", False

    return field
