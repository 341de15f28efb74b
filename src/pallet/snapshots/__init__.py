"""Snapshotter interface (containerd ``core/snapshots``).

Vocabulary: a *key* names an active (writable) or view (read-only) snapshot; a *name* names a
committed one; a *parent* is always committed. Lifecycle::

    mounts = sn.prepare("extract-1", parent="sha256:<chainID of the layer below>")
    ...write into mounts[0].as_dir()...
    sn.commit("sha256:<chainID>", "extract-1")     # the key is gone, the name is committed
    sn.view("look", "sha256:<chainID>")            # read-only view of a committed snapshot
    sn.remove("look")

Errors: ``prepare`` of an existing key and ``commit`` to an existing name raise AlreadyExists; a
missing parent NotFound; a parent that is not committed InvalidArgument; removing a snapshot that
has children FailedPrecondition; ``mounts`` of a committed snapshot FailedPrecondition.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..mount import Mount

__all__ = ["Info", "Kind", "Snapshotter", "Usage"]


class Kind(enum.StrEnum):
    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    name: str
    parent: str = ""
    kind: Kind
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    size: int
    inodes: int


class Snapshotter(Protocol):
    name: str

    def stat(self, key: str) -> Info: ...
    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info: ...
    def usage(self, key: str) -> Usage: ...
    def mounts(self, key: str) -> builtins.list[Mount]: ...

    def prepare(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]: ...

    def view(
        self,
        key: str,
        parent: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> builtins.list[Mount]: ...

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        lease: str | None = None,
    ) -> None: ...

    def remove(self, key: str) -> None: ...
    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]: ...
