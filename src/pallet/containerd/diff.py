"""containerd's diff service: apply a layer blob into mounts, inside the daemon.

The daemon reads the blob from its own content store (by digest), decompresses whatever the
bytes are, mounts the target (a bind or overlay from its snapshotter) and applies the tar with
its safe-apply rules; the answer is the uncompressed descriptor, whose digest is the diffID.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..mount import Mount
from ..oci.descriptor import Descriptor
from ._convert import descriptor_from_pb, descriptor_to_pb, mounts_to_pb
from ._rpc import Service

__all__ = ["ContainerdApplier"]


class ContainerdApplier(Service):
    """``Diff.Apply`` of one containerd namespace (containerd's ``diff.Applier``)."""

    SERVICE = "Diff"

    def apply(
        self, desc: Descriptor, mounts: Sequence[Mount], *, lease: str | None = None
    ) -> Descriptor:
        """Apply the layer ``desc`` (present in the namespace's content store) to ``mounts``.

        Returns:
            The applied (uncompressed) layer: its digest is the layer's diffID.
        """
        pb = self._conn.pb
        req = pb.diff.ApplyRequest(
            diff=descriptor_to_pb(pb.types, desc), mounts=mounts_to_pb(pb.types, mounts)
        )
        resp = self._call("Apply", req, f"layer {desc.digest}", lease)
        return descriptor_from_pb(resp.applied)
