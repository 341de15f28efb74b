"""A client of one containerd daemon in one namespace: pallet's store interfaces over gRPC."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Error, InvalidArgument, Unavailable
from ._proto import load
from ._rpc import Connection, one_line
from .content import ContainerdContentStore
from .diff import ContainerdApplier
from .images import ContainerdImageStore
from .leases import ContainerdLeaseManager
from .snapshots import ContainerdSnapshotter

if TYPE_CHECKING:
    from ..content import Store
    from ..images import ImageStore
    from ..leases import LeaseManager
    from ..snapshots import Snapshotter

__all__ = ["Client", "Version", "open_client", "validate_namespace"]

_NAMESPACE = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")


def validate_namespace(namespace: str) -> str:
    """containerd's identifier rule (≤ 76 characters of ``[A-Za-z0-9]`` joined by ``._-``).

    Raises:
        InvalidArgument: the name breaks the rule.
    """
    if not namespace or len(namespace) > 76 or not _NAMESPACE.match(namespace):
        raise InvalidArgument(
            f"namespace {namespace!r}: must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, "
            "at most 76 characters"
        )
    return namespace


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    revision: str


class Client:
    """containerd's stores of one namespace: ``content``, ``images``, ``leases``,
    ``snapshotter(name)`` and ``applier()``. Thread-safe; :meth:`with_namespace` shares the
    connection. Close it (or use it as a context manager) when done."""

    def __init__(self, conn: Connection, namespace: str, *, lease: str | None = None) -> None:
        self._conn = conn
        self.namespace = validate_namespace(namespace)
        self.lease = lease
        self.content = ContainerdContentStore(conn, self.namespace, lease=lease)
        self.images = ContainerdImageStore(conn, self.namespace)
        self.leases = ContainerdLeaseManager(conn, self.namespace)
        self._snapshotters: dict[str, ContainerdSnapshotter] = {}

    @property
    def address(self) -> str:
        return self._conn.address

    def snapshotter(self, name: str = "native") -> ContainerdSnapshotter:
        """The daemon's snapshotter ``name`` (``native``, ``overlayfs``, ...)."""
        sn = self._snapshotters.get(name)
        if sn is None:
            sn = ContainerdSnapshotter(self._conn, self.namespace, name, lease=self.lease)
            self._snapshotters[name] = sn
        return sn

    def applier(self) -> ContainerdApplier:
        """The daemon's layer applier (``Diff.Apply``)."""
        return ContainerdApplier(self._conn, self.namespace)

    def with_namespace(self, namespace: str) -> Client:
        """The same daemon in another namespace (shares the connection; no default lease)."""
        return Client(self._conn, namespace)

    def with_lease(self, lease_id: str | None) -> Client:
        """This namespace with a default lease: writers and snapshots opened without
        ``lease=`` are attached to ``lease_id`` (containerd's context lease). containerd
        collects unreferenced content at any time, so work that is not yet referenced by an
        image must be leased."""
        return Client(self._conn, self.namespace, lease=lease_id)

    def version(self, *, timeout: float | None = None) -> Version:
        req = self._conn.message("Version", "Empty")()
        resp = self._conn.call(
            "Version",
            "Version",
            req,
            namespace=self.namespace,
            what=f"containerd at {self.address}",
            timeout=timeout,
        )
        return Version(resp.version, resp.revision)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_client(address: str, namespace: str, *, timeout: float = 10.0) -> Client:
    """Connect to the socket ``address`` and check that a daemon answers.

    Raises:
        Unavailable: no socket, not a socket, or no daemon answering (one line naming it).
        Unsupported: the ``containerd`` extra is not installed.
        InvalidArgument: a bad namespace.
    """
    validate_namespace(namespace)
    load()  # Unsupported first: a missing extra is the thing to fix before anything else
    try:
        st = os.stat(address)
    except FileNotFoundError:
        raise Unavailable(
            f"containerd at {address}: no such socket (is containerd running?)"
        ) from None
    except OSError as exc:
        raise Unavailable(f"containerd at {address}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise Unavailable(f"containerd at {address}: not a socket")
    conn = Connection(address)
    client = Client(conn, namespace)
    try:
        client.version(timeout=timeout)
    except Unavailable:
        client.close()
        raise
    except Error as exc:
        client.close()
        raise Unavailable(f"containerd at {address}: {one_line(str(exc))}") from None
    return client


if TYPE_CHECKING:  # the containerd stores implement pallet's protocols (checked by mypy)

    def _conforms(c: Client) -> None:
        _s: Store = c.content
        _i: ImageStore = c.images
        _l: LeaseManager = c.leases
        _n: Snapshotter = c.snapshotter()
