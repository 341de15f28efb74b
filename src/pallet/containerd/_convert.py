"""Conversions between pallet's value types and the generated protobuf messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..mount import Mount
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest

__all__ = [
    "descriptor_from_pb",
    "descriptor_to_pb",
    "mounts_from_pb",
    "mounts_to_pb",
    "to_datetime",
]


def to_datetime(ts: Any) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    dt: datetime = ts.ToDatetime(tzinfo=UTC)
    return dt


def descriptor_to_pb(types_pb: Any, d: Descriptor) -> Any:
    """containerd's Descriptor carries media type, digest, size and annotations only."""
    return types_pb.Descriptor(
        media_type=d.media_type,
        digest=str(d.digest),
        size=d.size,
        annotations=dict(d.annotations),
    )


def descriptor_from_pb(pb: Any) -> Descriptor:
    return Descriptor(
        media_type=pb.media_type,
        digest=Digest(pb.digest),
        size=int(pb.size),
        annotations=dict(pb.annotations),
    )


def mounts_from_pb(pbs: Sequence[Any]) -> list[Mount]:
    return [Mount(type=m.type, source=m.source, options=tuple(m.options)) for m in pbs]


def mounts_to_pb(types_pb: Any, mounts: Sequence[Mount]) -> list[Any]:
    return [types_pb.Mount(type=m.type, source=m.source, options=list(m.options)) for m in mounts]
