"""containerd's lease service as a :class:`pallet.leases.LeaseManager`.

A lease id is passed explicitly (``lease=``) to the writes it should hold; this client turns it
into the ``containerd-lease`` header of those calls, and the daemon attaches what they create.
As with the embedded store an id is required (the daemon would invent one for an empty id).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from .. import filters as _filters
from .. import labels as _labels
from ..errors import InvalidArgument, NotFound
from ..leases import Lease, Resource
from ._convert import to_datetime
from ._rpc import Service

__all__ = ["ContainerdLeaseManager"]


def _order(lease: Lease) -> tuple[float, str]:
    return (lease.created_at.timestamp() if lease.created_at else 0.0, lease.id)


class ContainerdLeaseManager(Service):
    """The leases of one containerd namespace."""

    SERVICE = "Leases"

    def _on_lease(self, method: str, req: Any, lease_id: str) -> Any:
        """A resource call; a missing lease reads as with the embedded store."""
        try:
            return self._call(method, req, f"lease {lease_id}")
        except NotFound:
            raise NotFound(f"lease {lease_id}: lease does not exist") from None

    @staticmethod
    def _lease(pb: Any) -> Lease:
        return Lease(id=pb.id, created_at=to_datetime(pb.created_at), labels=dict(pb.labels))

    def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        if not lease_id:
            raise InvalidArgument("lease id '': must not be empty")
        lbl = _labels.validate_all(labels or {})
        req = self._conn.pb.leases.CreateRequest(id=lease_id, labels=lbl)
        return self._lease(self._call("Create", req, f"lease {lease_id}").lease)

    def delete(self, lease_id: str, *, sync: bool = False) -> None:
        req = self._conn.pb.leases.DeleteRequest(id=lease_id, sync=sync)
        self._call("Delete", req, f"lease {lease_id}")

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        _filters.parse(filters)
        req = self._conn.pb.leases.ListRequest(filters=list(filters))
        leases = [self._lease(x) for x in self._call("List", req, "lease list").leases]
        return sorted(leases, key=_order)

    def _resource(self, r: Resource) -> Any:
        if not r.id:
            raise InvalidArgument("lease resource id '': must not be empty")
        return self._conn.pb.leases.Resource(id=r.id, type=r.type)

    def add_resource(self, lease_id: str, resource: Resource) -> None:
        pb = self._conn.pb.leases
        req = pb.AddResourceRequest(id=lease_id, resource=self._resource(resource))
        self._on_lease("AddResource", req, lease_id)

    def delete_resource(self, lease_id: str, resource: Resource) -> None:
        pb = self._conn.pb.leases
        req = pb.DeleteResourceRequest(id=lease_id, resource=self._resource(resource))
        self._on_lease("DeleteResource", req, lease_id)

    def list_resources(self, lease_id: str) -> builtins.list[Resource]:
        req = self._conn.pb.leases.ListResourcesRequest(id=lease_id)
        resp = self._on_lease("ListResources", req, lease_id)
        return sorted(Resource(r.type, r.id) for r in resp.resources)
