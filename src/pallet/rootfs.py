"""Unpack layers into a snapshotter by chain ID (containerd ``rootfs.ApplyLayers``).

chainID(L0) = diffID(L0); chainID(L0..Ln) = sha256("<chainID(L0..Ln-1)> <diffID(Ln)>").

For each layer: if a committed snapshot named by its chain ID exists, skip it. Otherwise prepare
an active snapshot under a random ``extract-…`` key on top of the parent chain, apply the layer
into it (decompressing whatever the bytes say, and checking the diffID), and commit it as the
chain ID. Losing a commit race to another process (AlreadyExists) counts as success; on any error
the active snapshot is removed. The chain walk is :mod:`pallet.snapshots.chain`'s; this module
adds pallet's own applier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .archive.apply import apply_blob
from .content import Provider
from .mount import Mount, as_dir
from .oci.digest import Digest
from .snapshots import Snapshotter
from .snapshots.chain import Layer, apply_chain, chain_ids, extract

__all__ = ["Layer", "apply_layers", "chain_ids"]


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

    def apply_one(i: int, chains: Sequence[Digest]) -> bool:
        layer = layers[i]

        def write(mounts: list[Mount]) -> None:
            apply_blob(
                provider,
                layer.blob,
                as_dir(mounts),
                expected_diff_id=layer.diff_id,
                on_warning=on_warning,
            )

        extract(snapshotter, chains[i], chains[i - 1] if i else "", write, lease=lease)
        return True  # a commit race lost to another writer is reported as applied too

    return apply_chain(snapshotter, layers, apply_one, on_layer)
