"""Which store a command works on: the embedded one (default) or a containerd daemon.

``--containerd[=SOCKET]`` (or ``$PALLET_CONTAINERD_ADDRESS``) selects containerd, ``--namespace``
its namespace and ``--snapshotter`` the snapshotter that ``unpack`` fills (default
``$CONTAINERD_SNAPSHOTTER`` or ``overlayfs``, containerd's own default, which is what ``ctr run``
uses). Both backends offer the same protocols (content, images, leases, an unpacker), so the
commands and the exporter do not know which one they talk to. ``pallet containerd …`` takes the
same two flags.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from ._common import add_containerd_arguments as add_arguments
from ._common import open_store, wants_containerd

if TYPE_CHECKING:
    from ..containerd import Client
    from ..content import Store
    from ..images import ImageStore
    from ..leases import LeaseManager
    from ..oci.digest import Digest
    from ..rootfs import Layer

__all__ = ["Backend", "add_arguments", "connect", "open_backend", "wants_containerd"]


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
    """The stores of one command; ``close()`` when done, or use it as a context manager."""

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

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(args: argparse.Namespace) -> Client:
    """The containerd daemon ``--containerd`` and ``--namespace`` (or their defaults) name."""
    # the client (and grpc, on connect) only for a command that talks to containerd
    from .. import containerd

    if args.namespace == "":
        raise InvalidArgument("namespace: must not be empty")
    return containerd.connect(
        containerd.from_env(args.containerd), containerd.namespace_from_env(args.namespace)
    )


def open_backend(args: argparse.Namespace) -> Backend:
    """The embedded store at ``--root``, or containerd when asked for."""
    if not wants_containerd(args):
        db = open_store(args)
        return Backend(content=db.content, images=db.images, leases=db.leases, where=str(db.root))
    client = connect(args)
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
