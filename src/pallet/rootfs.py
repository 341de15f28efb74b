"""Unpack layers into a snapshotter by chain ID (containerd ``rootfs.ApplyLayers``).

chainID(L0) = diffID(L0); chainID(L0..Ln) = sha256("<chainID(L0..Ln-1)> <diffID(Ln)>").

For each layer: if a committed snapshot named by its chain ID exists, skip it. Otherwise prepare
an active snapshot under a random ``extract-…`` key on top of the parent chain, apply the layer
into it (decompressing whatever the bytes say, and checking the diffID), and commit it as the
chain ID. Losing a commit race to another process (AlreadyExists) counts as success; on any error
the active snapshot is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .archive.apply import apply_tar
from .compression import decompressed_reader
from .content import Provider
from .errors import AlreadyExists, NotFound
from .mount import as_dir
from .oci.descriptor import Descriptor
from .oci.digest import Digest
from .snapshots import Snapshotter

__all__ = ["Layer", "apply_layers", "chain_ids"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    blob: Descriptor
    diff_id: Digest


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            h = hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest()
            out.append(Digest("sha256:" + h))
    return out


def apply_layers(
    snapshotter: Snapshotter,
    provider: Provider,
    layers: Sequence[Layer],
    *,
    lease: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_layer: Callable[[Layer, bool], None] | None = None,
) -> Digest:
    """Make the chain of ``layers`` present in ``snapshotter``; returns the top chain ID.

    ``on_layer(layer, applied)`` is told of each layer (applied False: it was present already).
    """
    chains = chain_ids([ly.diff_id for ly in layers])
    # find the highest chain already present, then apply upwards from there
    start = len(chains)
    while start > 0:
        try:
            snapshotter.stat(chains[start - 1])
            break
        except NotFound:
            start -= 1
    for i in range(start):
        if on_layer:
            on_layer(layers[i], False)
    for i in range(start, len(layers)):
        parent = chains[i - 1] if i else ""
        _apply_one(snapshotter, provider, layers[i], chains[i], parent, lease, on_warning)
        if on_layer:
            on_layer(layers[i], True)
    return chains[-1] if chains else Digest("")


def _apply_one(
    sn: Snapshotter,
    provider: Provider,
    layer: Layer,
    chain: Digest,
    parent: str,
    lease: str | None,
    on_warning: Callable[[str], None] | None,
) -> None:
    while True:
        key = f"extract-{time.time_ns()}-{secrets.token_urlsafe(6)} {chain}"
        try:
            mounts = sn.prepare(key, parent, lease=lease)
            break
        except AlreadyExists:
            continue
    try:
        with (
            provider.open(layer.blob) as raw,
            decompressed_reader(raw, name=f"layer {layer.blob.digest}") as tar,
        ):
            apply_tar(tar, as_dir(mounts), expected_diff_id=layer.diff_id, on_warning=on_warning)
        try:
            sn.commit(chain, key, lease=lease)
        except AlreadyExists:
            pass  # another writer won the race: its snapshot is as good as ours
        else:
            return
    except BaseException:
        with contextlib.suppress(NotFound):
            sn.remove(key)
        raise
    with contextlib.suppress(NotFound):
        sn.remove(key)
