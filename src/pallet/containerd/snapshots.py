"""containerd's snapshot service (one named snapshotter) as a :class:`pallet.snapshots.Snapshotter`.

Mounts are what the daemon returns (``bind`` for ``native``, ``overlay`` for ``overlayfs``):
host paths inside the daemon's root, to be handed back to the daemon (``Diff.Apply``) rather
than mounted here. ``prepare``, ``view`` and ``commit`` with ``lease=`` attach the snapshot to
that lease.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .. import filters as _filters
from .. import labels as _labels
from ..errors import AlreadyExists, Error, FailedPrecondition, InvalidArgument, NotFound
from ..mount import Mount
from ..snapshots import Info, Kind, Usage
from ._convert import mounts_from_pb, to_datetime
from ._rpc import Connection, Service

__all__ = ["ContainerdSnapshotter"]

_KINDS = {1: Kind.VIEW, 2: Kind.ACTIVE, 3: Kind.COMMITTED}
_KIND_NUMBERS = {v: k for k, v in _KINDS.items()}


class ContainerdSnapshotter(Service):
    """Snapshotter ``name`` of one containerd namespace.

    ``lease``: the lease of ``prepare``/``view``/``commit`` called without one.
    """

    SERVICE = "Snapshots"

    def __init__(
        self, conn: Connection, namespace: str, name: str = "native", *, lease: str | None = None
    ) -> None:
        super().__init__(conn, namespace)
        self.name = name
        self.lease = lease

    def _what(self, key: str) -> str:
        return f"snapshot {self.name}/{key}"

    @staticmethod
    def _info(pb: Any) -> Info:
        return Info(
            name=pb.name,
            parent=pb.parent,
            kind=_KINDS.get(int(pb.kind), Kind.ACTIVE),
            labels=dict(pb.labels),
            created_at=to_datetime(pb.created_at),
            updated_at=to_datetime(pb.updated_at),
        )

    def stat(self, key: str) -> Info:
        req = self._conn.pb.snapshots.StatSnapshotRequest(snapshotter=self.name, key=key)
        return self._info(self._call("Stat", req, self._what(key)).info)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        for p in fieldpaths:
            if p != "labels" and not (p.startswith("labels.") and len(p) > len("labels.")):
                raise InvalidArgument(f"field path {p!r}: cannot update snapshot")
        _labels.apply_fieldpaths({}, info.labels, fieldpaths)  # validation only

        pb = self._conn.pb.snapshots
        req = pb.UpdateSnapshotRequest(
            snapshotter=self.name,
            info=pb.Info(
                name=info.name,
                parent=info.parent,
                kind=_KIND_NUMBERS.get(info.kind, 0),
                labels=dict(info.labels),
            ),
            update_mask=self._conn.field_mask(paths=list(fieldpaths)),
        )
        return self._info(self._call("Update", req, self._what(info.name)).info)

    def usage(self, key: str) -> Usage:
        req = self._conn.pb.snapshots.UsageRequest(snapshotter=self.name, key=key)
        resp = self._call("Usage", req, self._what(key))
        return Usage(int(resp.size), int(resp.inodes))

    def mounts(self, key: str) -> builtins.list[Mount]:
        req = self._conn.pb.snapshots.MountsRequest(snapshotter=self.name, key=key)
        return mounts_from_pb(self._call("Mounts", req, self._what(key)).mounts)

    def prepare(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]:
        return self._create("Prepare", key, parent, labels, lease)

    def view(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]:
        return self._create("View", key, parent, labels, lease)

    def _create(
        self,
        method: str,
        key: str,
        parent: str,
        labels: Mapping[str, str] | None,
        lease: str | None,
    ) -> builtins.list[Mount]:
        """``Prepare`` or ``View``: the two differ only in the kind of snapshot made."""
        lbl = _labels.validate_all(labels or {})
        request = getattr(self._conn.pb.snapshots, f"{method}SnapshotRequest")
        req = request(snapshotter=self.name, key=key, parent=parent, labels=lbl)
        return mounts_from_pb(self._call(method, req, self._what(key), lease or self.lease).mounts)

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> None:
        lbl = _labels.validate_all(labels or {})
        req = self._conn.pb.snapshots.CommitSnapshotRequest(
            snapshotter=self.name, name=name, key=key, labels=lbl
        )
        try:
            self._call("Commit", req, self._what(name), lease or self.lease)
        except (NotFound, FailedPrecondition, AlreadyExists, InvalidArgument):
            raise
        except Error:
            # containerd 1.6's native snapshotter fails obscurely (UNKNOWN) on a view; say
            # what pallet's snapshotter says
            try:
                kind = self.stat(key).kind
            except Error:
                kind = None
            if kind == Kind.VIEW:
                raise FailedPrecondition(
                    f"snapshot {self.name}/{key}: a view cannot be committed"
                ) from None
            raise

    def remove(self, key: str) -> None:
        req = self._conn.pb.snapshots.RemoveSnapshotRequest(snapshotter=self.name, key=key)
        self._call("Remove", req, self._what(key))

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        _filters.parse(filters)
        req = self._conn.pb.snapshots.ListSnapshotsRequest(
            snapshotter=self.name, filters=list(filters)
        )
        for resp in self._call("List", req, self._what("*")):
            for i in resp.info:
                yield self._info(i)
