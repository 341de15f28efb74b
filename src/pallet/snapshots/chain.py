"""A layer chain as committed snapshots named by chain ID (containerd's ``rootfs.ApplyLayers``
without the applier).

chainID(L0) = diffID(L0); chainID(L0..Ln) = sha256("<chainID(L0..Ln-1)> <diffID(Ln)>").

:func:`apply_chain` finds the highest chain ID already committed and has each layer above it
made present, in order. :func:`extract` makes one: it prepares an active snapshot under a random
``extract-<nanos>-<random> <chainID>`` key on top of the parent chain (a key collision picks a
new key), lets the caller write the layer into its mounts, and commits it as the chain ID. Losing
the commit race to another writer (AlreadyExists) counts as present; on any error the active
snapshot is removed.

:mod:`pallet.rootfs` writes with pallet's own applier; :mod:`pallet.containerd.unpack` with the
daemon's, or with pallet's into a bind-mounted snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ..errors import AlreadyExists, Error, NotFound
from ..mount import Mount
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from . import Snapshotter

__all__ = ["Layer", "apply_chain", "chain_ids", "extract"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """A layer blob and the digest of its uncompressed tar (its diffID)."""

    blob: Descriptor
    diff_id: Digest


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """chainID(L0) = diffID(L0); chainID(L0..Ln) = sha256("<chainID(L0..Ln-1)> <diffID(Ln)>")."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(Digest(d))
        else:
            h = hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest()
            out.append(Digest("sha256:" + h))
    return out


class _HasDiffID(Protocol):
    @property
    def diff_id(self) -> Digest: ...


L = TypeVar("L", bound=_HasDiffID)


def apply_chain(
    sn: Snapshotter,
    layers: Sequence[L],
    apply_one: Callable[[int, Sequence[Digest]], bool],
    on_layer: Callable[[L, bool], None] | None = None,
) -> Digest:
    """Make the chain of ``layers`` present in ``sn``; returns the top chain ID.

    ``apply_one(i, chains)`` makes layer ``i`` present as ``chains[i]`` on top of
    ``chains[i - 1]`` and says whether it applied it. ``on_layer(layer, applied)`` is told of
    each layer (applied False: it was present already).
    """
    chains = chain_ids([ly.diff_id for ly in layers])
    start = len(chains)
    while start > 0:  # the highest chain already present; apply upwards from there
        try:
            sn.stat(chains[start - 1])
            break
        except NotFound:
            start -= 1
    for i in range(start):
        if on_layer:
            on_layer(layers[i], False)
    for i in range(start, len(layers)):
        applied = apply_one(i, chains)
        if on_layer:
            on_layer(layers[i], applied)
    return chains[-1] if chains else Digest("")


def extract(
    sn: Snapshotter,
    chain: str,
    parent: str,
    write: Callable[[list[Mount]], None],
    *,
    lease: str | None = None,
    redo_parent: Callable[[], object] | None = None,
) -> bool:
    """Commit ``chain`` on top of ``parent`` with what ``write`` puts into the prepared mounts;
    False if another writer committed it first.

    ``redo_parent``, when given, is called once if ``parent`` went away between the caller's
    ``stat`` and the ``prepare``; the prepare is then tried again.
    """
    redone = False
    while True:
        key = f"extract-{time.time_ns()}-{secrets.token_urlsafe(6)} {chain}"
        try:
            mounts = sn.prepare(key, parent, lease=lease)
            break
        except AlreadyExists:
            continue  # key taken: pick another
        except NotFound:
            if redo_parent is None or redone:
                raise
            redo_parent()
            redone = True
    try:
        write(mounts)
        try:
            sn.commit(chain, key, lease=lease)
        except AlreadyExists:
            # another writer won the race: its snapshot is as good as ours
            with contextlib.suppress(NotFound):
                sn.remove(key)
            return False
        return True
    except BaseException:
        with contextlib.suppress(Error):
            sn.remove(key)
        raise
