"""containerd as a second implementation of pallet's store interfaces.

A :class:`Client` talks gRPC to a containerd daemon (1.6 API) on its unix socket and offers,
for one namespace, the same protocols as the embedded store (:mod:`pallet.metadata.store`), so code
written against the protocols cannot tell them apart:

* ``client.content``: :class:`pallet.content.Store` (resumable writers over the bidirectional
  ``Write`` stream, random-access readers over ``Read``, labels by field path, filters);
* ``client.images``: :class:`pallet.images.ImageStore` (``delete(name, sync=True)`` collects);
* ``client.leases``: :class:`pallet.leases.LeaseManager`; work passes ``lease=<id>`` and the
  client sends it as the ``containerd-lease`` header, so the daemon attaches what it creates;
* ``client.snapshotter(name)``: :class:`pallet.snapshots.Snapshotter` over ``snapshots.v1``;
* ``client.applier()`` and :func:`apply_layers`: unpack through the daemon's ``Diff.Apply``,
  the ``rootfs.ApplyLayers`` loop; :func:`unpack_image` also labels the config for GC;
* :func:`copy_image`: an image graph from another store (pallet's) into containerd.

Every call carries ``containerd-namespace: <namespace>``. gRPC codes become pallet errors
(NOT_FOUND → NotFound, ALREADY_EXISTS → AlreadyExists, INVALID_ARGUMENT → InvalidArgument,
FAILED_PRECONDITION → FailedPrecondition, UNAVAILABLE → Unavailable, UNIMPLEMENTED →
Unsupported); a daemon that is not running is one ``Unavailable`` line naming the socket.

Optional: needs the ``pallet[containerd]`` extra (grpcio, protobuf); without it :func:`connect`
raises ``Unsupported`` saying what to install. Nothing here imports grpc until :func:`connect` is
called. The message classes are protoc's output for pallet's own ``.proto`` files, generated
ahead of time and checked in (:mod:`pallet.containerd._proto`).

How the command line builds the backend::

    from pallet.containerd import connect, from_env, namespace_from_env
    # --containerd[=SOCKET] (nargs="?", const="") and --namespace NS
    client = connect(from_env(args.containerd), namespace_from_env(args.namespace))
    content, images, leases = client.content, client.images, client.leases
    snapshotter = client.snapshotter("native")       # or "overlayfs"
    ...
    client.close()

Example::

    with connect("/run/containerd/containerd.sock", "default") as c, temporary(c.leases) as lid:
        with c.content.writer("layer-1", total=n, expected=dgst, lease=lid) as w:
            w.write(data)
            w.commit(n, dgst)
"""

from __future__ import annotations

import os

from .client import Client, Version, open_client, validate_namespace
from .transfer import CopyResult, copy_image
from .unpack import Layer, apply_layers, chain_ids, unpack_image

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "Client",
    "CopyResult",
    "Layer",
    "Version",
    "apply_layers",
    "chain_ids",
    "connect",
    "copy_image",
    "from_env",
    "namespace_from_env",
    "unpack_image",
]

#: containerd's default gRPC socket
DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
#: containerd's (and ctr's) default namespace
DEFAULT_NAMESPACE = "default"


def _strip_scheme(address: str) -> str:
    return address[len("unix://") :] if address.startswith("unix://") else address


def _setting(arg: str | None, name: str) -> str | None:
    """``arg`` if not empty, else ``$PALLET_<name>``, else ``$<name>`` (ctr's), else None."""
    return arg or os.environ.get(f"PALLET_{name}") or os.environ.get(name) or None


def from_env(arg: str | None) -> str:
    """The socket to use: ``arg`` if given and not empty (``--containerd=SOCKET``), else
    ``$PALLET_CONTAINERD_ADDRESS``, else ``$CONTAINERD_ADDRESS`` (ctr's variable), else
    :data:`DEFAULT_ADDRESS`. A ``unix://`` prefix is accepted."""
    value = _setting(arg, "CONTAINERD_ADDRESS")
    return _strip_scheme(value) if value else DEFAULT_ADDRESS


def namespace_from_env(arg: str | None) -> str:
    """The namespace: ``arg`` (``--namespace``), else ``$PALLET_CONTAINERD_NAMESPACE``, else
    ``$CONTAINERD_NAMESPACE`` (ctr's variable), else ``default``."""
    value = _setting(arg, "CONTAINERD_NAMESPACE")
    return validate_namespace(value) if value else DEFAULT_NAMESPACE


def connect(
    address: str | None = None, namespace: str = DEFAULT_NAMESPACE, *, timeout: float = 10.0
) -> Client:
    """A :class:`Client` for ``address`` (default: :func:`from_env`) and ``namespace``.

    Checks that the daemon answers (``Version``) before returning.

    Raises:
        Unsupported: the ``pallet[containerd]`` extra is not installed.
        Unavailable: the daemon is not running at the socket (one line naming it).
        InvalidArgument: ``namespace`` is not a valid containerd identifier.
    """
    return open_client(from_env(address), namespace, timeout=timeout)
