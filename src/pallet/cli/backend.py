"""Which store a command works on: the embedded one (default) or a containerd daemon.

``--containerd[=SOCKET]`` (or ``$PALLET_CONTAINERD_ADDRESS``) selects containerd, ``--namespace``
its namespace and ``--snapshotter`` the snapshotter that ``unpack`` fills (default
``$CONTAINERD_SNAPSHOTTER`` or ``overlayfs``, containerd's own default, which is what ``ctr run``
uses). Both backends offer the same protocols (content, images, leases, an unpacker), so the
commands and the exporter do not know which one they talk to.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..content import Store
    from ..images import ImageStore
    from ..leases import LeaseManager
    from ..oci.digest import Digest
    from ..rootfs import Layer

__all__ = ["Backend", "add_arguments", "open_backend", "wants_containerd"]


def add_arguments(p: argparse.ArgumentParser, *, snapshotter: bool = False) -> None:
    """Add ``--containerd[=SOCKET]`` and ``--namespace`` (and ``--snapshotter``) to ``p``."""
    p.add_argument(
        "--containerd",
        nargs="?",
        const="",
        default=None,
        metavar="SOCKET",
        help="work on a containerd daemon instead of the embedded store (default socket: "
        "$PALLET_CONTAINERD_ADDRESS, $CONTAINERD_ADDRESS, /run/containerd/containerd.sock)",
    )
    p.add_argument(
        "--namespace",
        metavar="NS",
        help="containerd namespace (default: $PALLET_CONTAINERD_NAMESPACE, "
        "$CONTAINERD_NAMESPACE, default)",
    )
    if snapshotter:
        p.add_argument(
            "--snapshotter",
            metavar="NAME",
            help="containerd snapshotter for unpack (default: $CONTAINERD_SNAPSHOTTER or "
            "overlayfs)",
        )


def wants_containerd(args: argparse.Namespace) -> bool:
    """``--containerd`` given, or ``$PALLET_CONTAINERD_ADDRESS`` set."""
    if getattr(args, "containerd", None) is not None:
        return True
    return bool(os.environ.get("PALLET_CONTAINERD_ADDRESS"))


@dataclass(slots=True)
class _Unpacker:
    client: Any
    snapshotter: str

    def __call__(self, layers: Sequence[Layer], lease: str) -> Digest:
        from ..containerd import apply_layers

        result: Digest = apply_layers(self.client, self.snapshotter, layers, lease)
        return result

    def begin(self, parent: str, lease: str) -> Any:
        """A daemon snapshot to fill while the layer is computed (bind mounts only)."""
        from ..containerd.unpack import local_dir
        from ..exporter.unpack import SnapshotTarget

        sn = self.client.snapshotter(self.snapshotter)
        return SnapshotTarget.prepare(sn, parent, lease, local_dir)


@dataclass(slots=True)
class Backend:
    """The stores of one command; ``close()`` when done."""

    content: Store
    images: ImageStore
    leases: LeaseManager
    #: None: unpack with pallet's applier into the embedded native snapshotter
    unpacker: Any = None
    kind: str = "embedded"
    where: str = ""
    _close: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for c in self._close:
            c()


def open_backend(args: argparse.Namespace) -> Backend:
    """The embedded store at ``--root``, or containerd when asked for."""
    if not wants_containerd(args):
        from .main import _db

        db = _db(args)
        return Backend(content=db.content, images=db.images, leases=db.leases, where=str(db.root))
    from ..containerd import connect, from_env, namespace_from_env

    if getattr(args, "namespace", None) == "":
        raise InvalidArgument("namespace: must not be empty")
    client = connect(from_env(args.containerd), namespace_from_env(args.namespace))
    sn = (
        getattr(args, "snapshotter", None)
        or os.environ.get("CONTAINERD_SNAPSHOTTER")
        or "overlayfs"
    )
    return Backend(
        content=client.content,
        images=client.images,
        leases=client.leases,
        unpacker=_Unpacker(client, sn),
        kind="containerd",
        where=f"{client.address} namespace {client.namespace}",
        _close=[client.close],
    )
