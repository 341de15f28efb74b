"""The stores behind a :class:`pallet.Store`: the embedded one, or a containerd daemon.

Both offer the same protocols (content, images, leases, an unpacker), so the exporter and the
registry client do not know which one they talk to. A containerd-backed store still keeps an
embedded store at its root: the snapshots of an export's input directories are recorded there
(they are the user's directories, registered without a copy, which containerd cannot hold).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidArgument

if TYPE_CHECKING:
    from .containerd import Client
    from .content import Store as ContentStore
    from .exporter.unpack import SnapshotTarget, Unpacker
    from .images import ImageStore
    from .leases import LeaseManager
    from .metadata.store import Store as Embedded
    from .oci.digest import Digest
    from .rootfs import Layer

__all__ = ["Backend", "default_root", "open_containerd", "open_embedded"]


def default_root() -> Path:
    """``$PALLET_ROOT``, else ``$XDG_DATA_HOME/pallet``, else ``~/.local/share/pallet``."""
    env = os.environ.get("PALLET_ROOT")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "pallet"


@dataclass(slots=True)
class _DaemonUnpacker:
    """Unpacks into a containerd snapshotter: with the daemon's ``Diff.Apply``, or (bind-mount
    snapshotters) by pallet while the layer is computed."""

    client: Client
    snapshotter: str

    def __call__(self, layers: Sequence[Layer], lease: str) -> Digest:
        from .containerd import apply_layers

        result: Digest = apply_layers(self.client, self.snapshotter, layers, lease)
        return result

    def begin(self, parent: str, lease: str) -> SnapshotTarget | None:
        """A daemon snapshot to fill while the layer is computed (bind mounts only)."""
        from .containerd.unpack import local_dir
        from .exporter.unpack import SnapshotTarget

        sn = self.client.snapshotter(self.snapshotter)
        return SnapshotTarget.prepare(sn, parent, lease, local_dir)


@dataclass(slots=True)
class Backend:
    """The stores one :class:`pallet.Store` works on; ``close()`` when done."""

    #: the embedded store at the root: the whole store, or (containerd) the input snapshots
    embedded: Embedded
    content: ContentStore
    images: ImageStore
    leases: LeaseManager
    #: None: unpack with pallet's applier into the embedded native snapshotter
    unpacker: Unpacker | None = None
    kind: str = "embedded"
    #: where the images live, for messages: a directory, or a socket and namespace
    where: str = ""
    client: Client | None = None
    _close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for c in reversed(self._close):
            c()
        self._close.clear()


def open_embedded(root: str | os.PathLike[str] | None) -> Backend:
    """The embedded store at ``root`` (else :func:`default_root`)."""
    from .metadata.store import open_store

    db = open_store(Path(root) if root is not None else default_root())
    return Backend(
        embedded=db,
        content=db.content,
        images=db.images,
        leases=db.leases,
        where=str(db.root),
        _close=[db.close],
    )


def open_containerd(
    address: str | None,
    namespace: str | None,
    *,
    snapshotter: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Backend:
    """containerd at ``address`` (default: ``$PALLET_CONTAINERD_ADDRESS``,
    ``$CONTAINERD_ADDRESS``, the default socket), in ``namespace``; unpacks fill ``snapshotter``
    (default ``$CONTAINERD_SNAPSHOTTER``, else ``overlayfs``, what ``ctr run`` uses)."""
    from . import containerd

    if namespace == "":
        raise InvalidArgument("namespace: must not be empty")
    embedded = open_embedded(root)
    try:
        client = containerd.connect(
            containerd.from_env(address), containerd.namespace_from_env(namespace)
        )
    except BaseException:
        embedded.close()
        raise
    sn = snapshotter or os.environ.get("CONTAINERD_SNAPSHOTTER") or "overlayfs"
    return Backend(
        embedded=embedded.embedded,
        content=client.content,
        images=client.images,
        leases=client.leases,
        unpacker=_DaemonUnpacker(client, sn),
        kind="containerd",
        where=f"{client.address} namespace {client.namespace}",
        client=client,
        _close=[*embedded._close, client.close],
    )
