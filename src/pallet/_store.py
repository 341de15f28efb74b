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
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from ._views import ContentStore, LeaseManager

if TYPE_CHECKING:
    from ._backend import Backend
    from ._types import ContainerdVersion, CopyResult, FsckReport, GCStats, Image
    from .oci.descriptor import Descriptor, Platform

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

    A store may be shared by several threads, and several processes (this library or the
    ``pallet`` command) may work on the same root at once.

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
    def images(self, filters: Sequence[str] = ()) -> list[Image]:
        """The images matching every filter (containerd's syntax: ``name~=^docker.io/``,
        ``labels."k"==v``, ``target.mediatype==…``), by name.

        :attr:`Image.size` is the size of everything the image references (for an index, all
        platforms), as ``docker images`` shows; :attr:`Image.root_size` the manifest's or
        index's own.

        Example::

            for image in store.images(["name~=^registry.example.com/"]):
                print(image.name, image.digest, image.size)

        Raises:
            InvalidArgument: a filter does not parse.
        """
        from . import _manage

        return _manage.images(self._backend, filters)

    def image(self, ref: str) -> Image:
        """The image named ``ref``, as written or normalised (``alpine:3.20`` finds
        ``docker.io/library/alpine:3.20``).

        Example::

            image = store.image("registry.example.com/app:1")
            print(image.digest, image.media_type)

        Raises:
            NotFound: no image has that name.
        """
        from . import _manage

        return _manage.image(self._backend, ref)

    def graph(self, ref: str | Image) -> list[Descriptor]:
        """Every descriptor the image references: the root first, parents before children,
        each digest once (what ``pallet images inspect`` prints as ``graph``).

        Example::

            layers = [d for d in store.graph("app:1") if "layer" in d.media_type]

        Raises:
            NotFound: the image, or a manifest or index under it, is not in the store.
        """
        from . import _manage

        return _manage.graph(self._backend, ref)

    def tag(self, src: str | Image, dst: str) -> Image:
        """Give ``src``'s target the name ``dst`` too (moving ``dst`` if it named another
        image); returns the ``dst`` image.

        Example::

            store.tag("registry.example.com/app:1", "registry.example.com/app:latest")

        Raises:
            NotFound: no image is named ``src``.
            InvalidArgument: ``dst`` is not a valid name.
        """
        from . import _manage

        return _manage.tag(self._backend, src, dst)

    def remove(self, *names: str, gc: bool = True) -> None:
        """Delete images, in order. With ``gc`` the last delete collects garbage before it
        returns (the embedded store runs its collector; containerd's is awaited), so the
        content only those images held is gone.

        Example::

            store.remove("registry.example.com/app:1", "registry.example.com/app:latest")

        Raises:
            NotFound: no image has a name (those before it are deleted).
        """
        from . import _manage

        _manage.remove(self._backend, names, gc=gc)

    def gc(self, *, dry_run: bool = False) -> GCStats:
        """Collect garbage: remove the blobs, snapshots and stale ingests that no image, lease
        or label holds, and the expired leases. Safe while other threads and processes export,
        pull and load into the store.

        Example::

            stats = store.gc()
            print(f"{len(stats.blobs)} blobs, {stats.bytes} bytes freed")

        Raises:
            Unsupported: a containerd store (the daemon collects its own garbage).
        """
        from . import _manage

        return _manage.gc(self._backend, dry_run=dry_run)

    def fsck(self, *, repair: bool = False) -> FsckReport:
        """Verify every blob against its digest and every image's graph; with ``repair``,
        remove what cannot be trusted (never a valid blob).

        Example::

            report = store.fsck()
            if not report.ok:
                print("\n".join(map(str, report.problems)))

        Raises:
            Unsupported: a containerd store.
        """
        from . import _manage

        return _manage.fsck(self._backend, repair=repair)

    @property
    def content(self) -> ContentStore:
        """The store's blobs and ingests (``pallet content``).

        Example::

            dgst = store.content.ingest("note", b"hello")
            store.content.read(dgst)   # b'hello'
        """
        return ContentStore(self._backend)

    @property
    def leases(self) -> LeaseManager:
        """The store's leases (``pallet leases``).

        Example::

            with store.leases.temporary() as lease:
                store.content.ingest("upload", data, lease=lease)
        """
        return LeaseManager(self._backend)

    def version(self) -> ContainerdVersion:
        """The containerd daemon's version (a health check: the daemon answered).

        Example::

            with pallet.Store.containerd() as ctr:
                print(ctr.version().version)

        Raises:
            Unsupported: the embedded store.
            Unavailable: the daemon stopped answering.
        """
        from . import _manage

        return _manage.version(self._backend)

    def copy(
        self,
        ref: str | Image,
        to: Store,
        *,
        names: Sequence[str] = (),
        unpack: bool = False,
        snapshotter: str | None = None,
        platform: str | Platform | None = None,
    ) -> CopyResult:
        """Copy an image into the containerd store ``to``: children before parents, with the
        labels containerd's collector follows, under a temporary lease; then name it (``names``,
        default its own name) and, with ``unpack``, unpack ``platform`` (default this
        machine's) into ``snapshotter`` (default ``to``'s).

        Example::

            with pallet.Store() as store, pallet.Store.containerd(namespace="ci") as ctr:
                store.copy("app:1", ctr, names=["registry.example.com/app:1"], unpack=True)

        Raises:
            NotFound: no image has that name, or a blob of its graph is missing.
            Unsupported: ``to`` is not a containerd store.
        """
        from . import _manage

        return _manage.copy(
            self._backend,
            ref,
            to._backend,
            names=names,
            unpack=unpack,
            snapshotter=snapshotter,
            platform=platform,
        )
