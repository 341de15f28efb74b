"""containerd's image service as a :class:`pallet.images.ImageStore`.

The same checks as the embedded store run before a request leaves (target media type, digest and
a size above zero; label rules; field paths ``labels``, ``labels.<k>``, ``target``,
``annotations``, ``annotations.<k>``), so both stores fail alike; the daemon checks again.
``delete(name, sync=True)`` makes the daemon collect garbage before it answers.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .. import filters as _filters
from .. import labels as _labels
from ..errors import InvalidArgument
from ..images import Image, validate_image
from ._convert import descriptor_from_pb, descriptor_to_pb, to_datetime
from ._rpc import Service

__all__ = ["ContainerdImageStore"]


def _check_fieldpaths(fieldpaths: Sequence[str]) -> None:
    for p in fieldpaths:
        ok = p in ("labels", "target", "annotations") or (
            (p.startswith("labels.") or p.startswith("annotations.")) and not p.endswith(".")
        )
        if not ok:
            raise InvalidArgument(f"field path {p!r}: cannot update image")


class ContainerdImageStore(Service):
    """The images of one containerd namespace."""

    SERVICE = "Images"

    def _to_pb(self, image: Image) -> Any:
        pb = self._conn.pb
        return pb.images.Image(
            name=image.name,
            labels=dict(image.labels),
            target=descriptor_to_pb(pb.types, image.target),
        )

    @staticmethod
    def _from_pb(pb: Any) -> Image:
        return Image(
            name=pb.name,
            target=descriptor_from_pb(pb.target),
            labels=dict(pb.labels),
            created_at=to_datetime(pb.created_at),
            updated_at=to_datetime(pb.updated_at),
        )

    def get(self, name: str) -> Image:
        req = self._conn.pb.images.GetImageRequest(name=name)
        return self._from_pb(self._call("Get", req, f"image {name}").image)

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        _filters.parse(filters)
        req = self._conn.pb.images.ListImagesRequest(filters=list(filters))
        resp = self._call("List", req, "image list")
        return sorted((self._from_pb(i) for i in resp.images), key=lambda i: i.name)

    def create(self, image: Image) -> Image:
        validate_image(image)
        _labels.validate_all(image.labels)
        req = self._conn.pb.images.CreateImageRequest(image=self._to_pb(image))
        return self._from_pb(self._call("Create", req, f"image {image.name}").image)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        if not image.name:
            raise InvalidArgument("image name '': must not be empty")
        _check_fieldpaths(fieldpaths)
        if not fieldpaths or "target" in fieldpaths:
            validate_image(image)
        if not fieldpaths or "labels" in fieldpaths:
            _labels.validate_all(image.labels)

        req = self._conn.pb.images.UpdateImageRequest(
            image=self._to_pb(image),
            update_mask=self._conn.field_mask(paths=list(fieldpaths)),
        )
        return self._from_pb(self._call("Update", req, f"image {image.name}").image)

    def delete(self, name: str, *, sync: bool = False) -> None:
        req = self._conn.pb.images.DeleteImageRequest(name=name, sync=sync)
        self._call("Delete", req, f"image {name}")
