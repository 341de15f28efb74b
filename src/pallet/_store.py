"""``pallet.Store``: the library's front door.

A :class:`Store` is the embedded content-addressed store at a root directory, or a containerd
daemon (:meth:`Store.containerd`). Every call the command line makes is a method here; the
methods hand their work to one private module per area:

* :mod:`pallet._export`: ``export`` (inputs, base images, config merging, outputs);
* :mod:`pallet._registry`: ``push``, ``pull``, ``login``, ``logout``;
* :mod:`pallet._archive`: ``save``, ``load``, ``unpack``;
* :mod:`pallet._manage`: images, tags, content, leases, ``gc``, ``fsck``.

Those modules, and what they import (the HTTP stack, the codecs, gRPC), load on the first call
that needs them, so ``import pallet`` stays light.

Thread and process safety: one :class:`Store` may be used from several threads at once, and
several processes may open the same root: the embedded store guards every ingest with a lock
file, publishes blobs under a shared GC lock and keeps its records in SQLite (WAL).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._backend import Backend

__all__ = ["Store"]

#: a path, as the standard library takes them
StrPath = str | os.PathLike[str]


class Store:
    """An image store: the embedded one at ``root``, or containerd (:meth:`containerd`).

    Example::

        import pallet

        with pallet.Store(root="/tmp/pallet-doc") as store:
            for image in store.images():
                print(image.name, image.digest)

    Args:
        root: the store's directory; default ``$PALLET_ROOT``, else
            ``$XDG_DATA_HOME/pallet``, else ``~/.local/share/pallet`` (as the command line).
    """

    def __init__(self, root: StrPath | None = None) -> None:
        from ._backend import open_embedded

        self._backend: Backend = open_embedded(root)

    @classmethod
    def containerd(
        cls,
        address: str | None = None,
        namespace: str | None = None,
        *,
        snapshotter: str | None = None,
        root: StrPath | None = None,
    ) -> Store:
        """A store on a containerd daemon.

        Example::

            with pallet.Store.containerd(namespace="default") as store:
                store.pull("docker.io/library/alpine:3.20")

        Args:
            address: the socket; default ``$PALLET_CONTAINERD_ADDRESS``,
                ``$CONTAINERD_ADDRESS``, ``/run/containerd/containerd.sock``.
            namespace: default ``$PALLET_CONTAINERD_NAMESPACE``, ``$CONTAINERD_NAMESPACE``,
                ``default``.
            snapshotter: the snapshotter ``unpack=True`` fills; default
                ``$CONTAINERD_SNAPSHOTTER``, else ``overlayfs``.
            root: the embedded store that records an export's input directories.
        """
        from ._backend import open_containerd

        self = cls.__new__(cls)
        self._backend = open_containerd(address, namespace, snapshotter=snapshotter, root=root)
        return self

    @property
    def kind(self) -> str:
        """``"embedded"`` or ``"containerd"``."""
        return self._backend.kind

    @property
    def where(self) -> str:
        """The root directory, or the containerd socket and namespace."""
        return self._backend.where

    def close(self) -> None:
        """Release the store's connections; the store is not usable afterwards."""
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pallet.Store {self.kind} {self.where}>"

    # --- export: pallet._export -------------------------------------------------------------
    # (methods of this area go here)

    # --- registries: pallet._registry -----------------------------------------------------------
    # (methods of this area go here)

    # --- archives: pallet._archive --------------------------------------------------------------
    # (methods of this area go here)

    # --- images, content, leases, gc, fsck: pallet._manage --------------------------------------
    # (methods of this area go here)
