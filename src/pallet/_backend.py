"""The stores behind a :class:`pallet.Store`: the embedded one, or a containerd daemon.

Both offer the same protocols (content, images, leases, an unpacker), so the exporter and the
registry client do not know which one they talk to. A containerd-backed store still keeps an
embedded store at its root: the snapshots of an export's input directories are recorded there
(they are the user's directories, registered without a copy, which containerd cannot hold).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FailedPrecondition, InvalidArgument

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

    content: ContentStore
    images: ImageStore
    leases: LeaseManager
    #: None: unpack with pallet's applier into the embedded native snapshotter
    unpacker: Unpacker | None = None
    kind: str = "embedded"
    #: where the images live, for messages: a directory, or a socket and namespace
    where: str = ""
    client: Client | None = None
    #: opens the embedded store at the root (see :attr:`embedded`)
    embedded_opener: Callable[[], Embedded] | None = None
    _embedded: Embedded | None = None
    _close: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def live(self) -> Backend:
        """This backend; FailedPrecondition once :meth:`close` ran."""
        if self.closed:
            raise FailedPrecondition(f"store {self.where}: closed")
        return self

    @property
    def embedded(self) -> Embedded:
        """The embedded store at the root: the whole store, or (containerd) where an export
        records its input snapshots. A containerd-backed store opens it on first use, so that
        the calls that only talk to the daemon do not create a store directory."""
        with self._lock:
            self.live()
            if self._embedded is None:
                if self.embedded_opener is None:
                    raise FailedPrecondition(f"store {self.where}: has no embedded store")
                self._embedded = self.embedded_opener()
                self._close.insert(0, self._embedded.close)
            return self._embedded

    def close(self) -> None:
        """Run every close callback (all of them, even when one raises); idempotent."""
        with self._lock:
            self.closed = True
            callbacks = list(reversed(self._close))
            self._close.clear()
        _run_all(callbacks)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    """Call each of ``callbacks`` in order; the first exception propagates after the rest ran."""
    if not callbacks:
        return
    try:
        callbacks[0]()
    finally:
        _run_all(callbacks[1:])


def _open_db(root: str | os.PathLike[str] | None) -> Embedded:
    from .metadata.store import open_store

    return open_store(Path(root) if root is not None else default_root())


def open_embedded(root: str | os.PathLike[str] | None) -> Backend:
    """The embedded store at ``root`` (else :func:`default_root`)."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise InvalidArgument(f"root {root!r}: want a path (str or os.PathLike)")
    db = _open_db(root)
    return Backend(
        content=db.content,
        images=db.images,
        leases=db.leases,
        where=str(db.root),
        _embedded=db,
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
    client = containerd.connect(
        containerd.from_env(address), containerd.namespace_from_env(namespace)
    )
    sn = snapshotter or os.environ.get("CONTAINERD_SNAPSHOTTER") or "overlayfs"
    return Backend(
        content=client.content,
        images=client.images,
        leases=client.leases,
        unpacker=_DaemonUnpacker(client, sn),
        kind="containerd",
        where=f"{client.address} namespace {client.namespace}",
        client=client,
        embedded_opener=lambda: _open_db(root),
        _close=[client.close],
    )
