"""Leases (containerd ``core/leases``): hold content and snapshots alive while work is in flight.

Lifecycle: ``create`` a lease (usually with a ``containerd.io/gc.expire`` label so a crashed
process cannot pin data forever), pass its id as ``lease=`` to every write, then ``delete`` it once
an image (or another root) references what was written. :func:`temporary` does all of this as a
context manager. The lease id is passed explicitly, not through a context variable, because work
runs in executor threads that a ``ContextVar`` would not follow.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .labels import GC_EXPIRE

__all__ = ["Lease", "LeaseManager", "Resource", "new_id", "temporary"]

RESOURCE_TYPES = ("content", "ingests")  # plus "snapshots/<snapshotter>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    id: str
    created_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, order=True)
class Resource:
    type: str
    id: str


class LeaseManager(Protocol):
    def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease: ...
    def delete(self, lease_id: str, *, sync: bool = False) -> None: ...
    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]: ...
    def add_resource(self, lease_id: str, resource: Resource) -> None: ...
    def delete_resource(self, lease_id: str, resource: Resource) -> None: ...
    def list_resources(self, lease_id: str) -> builtins.list[Resource]: ...


def new_id(prefix: str = "pallet") -> str:
    """Unique, sortable lease id: ``<prefix>-<unix nanoseconds>-<random>``."""
    import secrets  # on first use: it loads OpenSSL's hashes, which opening a store does not need

    return f"{prefix}-{time.time_ns()}-{secrets.token_hex(4)}"


@contextmanager
def temporary(
    manager: LeaseManager,
    *,
    expire: timedelta = timedelta(hours=1),
    labels: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A lease that expires on its own after ``expire`` and is deleted on exit (BuildKit: 1 h)."""
    lid = new_id()
    lbl = dict(labels or {})
    lbl[GC_EXPIRE] = (datetime.now(UTC) + expire).isoformat().replace("+00:00", "Z")
    manager.create(lid, lbl)
    try:
        yield lid
    finally:
        manager.delete(lid)
