"""Unpack layers into a containerd snapshotter with the daemon's own applier.

This is containerd's ``rootfs.ApplyLayers`` run from the client, as BuildKit's exporter does
(spec/containerd.md §3.4): for each layer whose chain ID is not yet a committed snapshot,
``Prepare`` an active snapshot under a random ``extract-<nanos>-<random> <chainID>`` key on top
of the parent chain, ``Diff.Apply`` the layer blob into its mounts (inside the daemon, which
reads the blob from its own content store), check that the applied digest is the layer's diffID,
and ``Commit`` it as the chain ID. A key collision picks a new key; a parent that vanished is
re-applied first; losing the commit race to another client (AlreadyExists) is success; on any
error the active snapshot is removed. With ``lease=`` every snapshot is attached to the lease.

:func:`unpack_image` is BuildKit's ``unpackImage``: pick the platform's manifest, take the
layers and the config's diffIDs, apply them, then label the config blob
``containerd.io/gc.ref.snapshot.<snapshotter>=<top chain ID>`` so that the image keeps its
snapshots alive once the lease is gone.

Local apply: when the prepared snapshot's mounts are one bind mount of a directory this process
can write (the ``native`` snapshotter always, ``overlayfs`` for a snapshot without parent, with
the daemon on this machine), the layer is applied by pallet's own applier
(:func:`pallet.archive.apply.apply_tar`, root-confined, diffID checked) reading the blob from the
daemon's content store, instead of ``Diff.Apply``. The snapshot, its key, lease and commit are
the daemon's as before; only who writes the files changes. It is what containerd's in-process
applier does after mounting, and it is much faster than the 1.6 daemon's applier (figures in
BENCHMARKS.md). ``$PALLET_CONTAINERD_APPLY=daemon`` always uses ``Diff.Apply``; any other mount
(an overlay with lower directories) does too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .. import images as _images
from ..content import Provider, set_labels
from ..errors import DigestMismatch, InvalidArgument, NotFound
from ..labels import GC_REF_SNAPSHOT_PREFIX
from ..mount import Mount
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from ..snapshots.chain import Layer, apply_chain, chain_ids, extract

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "Layer",
    "LayerLike",
    "apply_layers",
    "chain_ids",
    "local_dir",
    "select_manifest",
    "unpack_image",
]

MAX_CONFIG = 8 << 20


class LayerLike(Protocol):
    """A layer blob and its diffID (``pallet.rootfs.Layer`` has this shape)."""

    @property
    def blob(self) -> Descriptor: ...
    @property
    def diff_id(self) -> Digest: ...


def apply_layers(
    client: Client,
    snapshotter_name: str,
    layers: Sequence[LayerLike],
    lease: str | None = None,
    *,
    on_layer: Callable[[LayerLike, bool], None] | None = None,
) -> Digest:
    """Make the chain of ``layers`` present in the daemon's snapshotter; returns the top chain ID.

    ``on_layer(layer, applied)`` is told of each layer (applied False: it was present already).

    Raises:
        DigestMismatch: the daemon's applied digest is not the layer's diffID.
        NotFound: a layer blob is not in the namespace's content store.
    """
    sn = client.snapshotter(snapshotter_name)
    applier = client.applier()

    def apply_one(i: int, chains: Sequence[Digest]) -> bool:
        """Apply layer ``i`` on top of chain ``i-1``; False if another client committed it first."""
        layer = layers[i]

        def write(mounts: list[Mount]) -> None:
            local = local_dir(mounts)
            if local is not None:
                from ..archive.apply import apply_blob  # the applier loads only when used

                got = apply_blob(client.content, layer.blob, local).diff_id
            else:
                got = applier.apply(layer.blob, mounts, lease=lease).digest
            if got != layer.diff_id:
                raise DigestMismatch(
                    f"layer {layer.blob.digest}: wrong diff id calculated on extraction "
                    f"{got}, expected {layer.diff_id}"
                )

        return extract(
            sn,
            chains[i],
            chains[i - 1] if i else "",
            write,
            lease=lease,
            redo_parent=(lambda: apply_one(i - 1, chains)) if i else None,
        )

    return apply_chain(sn, layers, apply_one, on_layer)


def local_dir(mounts: Sequence[Mount]) -> str | None:
    """The directory to apply into ourselves, or None for ``Diff.Apply`` (module docstring)."""
    if os.environ.get("PALLET_CONTAINERD_APPLY", "auto") == "daemon":
        return None
    if len(mounts) != 1 or mounts[0].type not in ("bind", "rbind") or mounts[0].readonly:
        return None
    d = mounts[0].source
    if not os.path.isdir(d) or os.path.islink(d) or not os.access(d, os.W_OK | os.X_OK):
        return None
    return d


def _matches(p: Platform | None, want: Platform) -> bool:
    if p is None:
        return False
    return (
        p.os == want.os
        and p.architecture == want.architecture
        and (not want.variant or not p.variant or p.variant == want.variant)
    )


def select_manifest(
    provider: Provider, desc: Descriptor, platform: Platform | None = None
) -> Descriptor:
    """The manifest of ``platform`` (default: this machine's) under ``desc``.

    Raises:
        NotFound: an index has no manifest for the platform.
    """
    want = platform or Platform.default()
    seen = 0
    while mt.is_index(desc.media_type):
        seen += 1
        if seen > 8:
            raise InvalidArgument(f"index {desc.digest}: nested too deeply")
        kids = _images.children(provider, desc)
        exact = [k for k in kids if _matches(k.platform, want) and k.platform == want]
        loose = [k for k in kids if _matches(k.platform, want)]
        if not (exact or loose):
            raise NotFound(f"index {desc.digest}: no manifest for platform {want}")
        desc = (exact or loose)[0]
    if not mt.is_manifest(desc.media_type):
        raise InvalidArgument(f"image target {desc.digest}: {desc.media_type} is not a manifest")
    return desc


def unpack_image(
    client: Client,
    target: Descriptor,
    *,
    snapshotter: str = "native",
    platform: Platform | None = None,
    lease: str | None = None,
    on_layer: Callable[[LayerLike, bool], None] | None = None,
) -> Digest:
    """Unpack the image ``target`` (manifest or index) and label its config; returns the chain ID.

    Raises:
        InvalidArgument: the config's diffIDs do not match the manifest's layers.
    """
    content = client.content
    manifest_desc = select_manifest(content, target, platform)
    manifest = _images.read_json(content, manifest_desc, limit=MAX_CONFIG)
    config = Descriptor.from_json(manifest.get("config") or {})
    blobs = [Descriptor.from_json(x) for x in manifest.get("layers") or ()]
    cfg = _images.read_json(content, config, "config", MAX_CONFIG)
    diff_ids = [Digest.parse(str(d)) for d in (cfg.get("rootfs") or {}).get("diff_ids") or ()]
    if len(diff_ids) != len(blobs):
        raise InvalidArgument(
            f"manifest {manifest_desc.digest}: mismatched image rootfs and manifest layers"
        )
    layers = [Layer(blob=b, diff_id=d) for b, d in zip(blobs, diff_ids, strict=True)]
    chain = apply_layers(client, snapshotter, layers, lease, on_layer=on_layer)
    if layers:
        key = f"{GC_REF_SNAPSHOT_PREFIX}{snapshotter}"
        set_labels(content, config, {key: chain})
    return chain
