"""Images in the metadata database (containerd ``core/metadata/images.go``).

Owns the ``images`` table. :class:`ImageTable` is the store's :class:`~pallet.images.ImageStore`:
a name, a target descriptor, labels and timestamps per image. An image is a garbage-collection
root (its target and the references in its labels); ``delete(..., sync=True)`` collects at once.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC
from typing import Any

from .. import labels as _labels
from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..images import Image, validate_image
from ..oci.descriptor import Descriptor
from ._sqlite import Database, decode_time, delete_one, encode_time, now

__all__ = ["ImageTable"]


def _target_json(d: Descriptor) -> str:
    return json.dumps(d.to_json(), sort_keys=True)


def _image(row: tuple[Any, ...]) -> Image:
    name, target, lbl, created, updated = row
    return Image(
        name=name,
        target=Descriptor.from_json(json.loads(target)),
        labels=json.loads(lbl),
        created_at=decode_time(created),
        updated_at=decode_time(updated),
    )


class ImageTable:
    """The :class:`~pallet.images.ImageStore` over ``db``'s ``images`` table.

    ``collect`` runs garbage collection; ``delete(..., sync=True)`` calls it.
    """

    def __init__(self, db: Database, *, collect: Callable[[], object]) -> None:
        self._db = db
        self._collect = collect

    def get(self, name: str) -> Image:
        with self._db.read() as c:
            row = c.execute("SELECT * FROM images WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"image {name}: not found")
        return _image(row)

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        from .. import filters as _filters  # on first use: only listing needs the parser

        flt = _filters.parse(filters)
        with self._db.read() as c:
            rows = c.execute("SELECT * FROM images ORDER BY name").fetchall()
        return [i for i in map(_image, rows) if flt.match(_image_field(i))]

    def create(self, image: Image) -> Image:
        validate_image(image)
        lbl = _labels.validate_all(image.labels)
        updated = now()
        # a given CreatedAt is kept (BuildKit sets it to SOURCE_DATE_EPOCH; containerd >= 1.7
        # keeps it too), else now
        created = image.created_at.astimezone(UTC) if image.created_at is not None else updated
        with self._db.transaction() as c:
            if c.execute("SELECT 1 FROM images WHERE name=?", (image.name,)).fetchone():
                raise AlreadyExists(f"image {image.name}: already exists")
            c.execute(
                "INSERT INTO images VALUES(?,?,?,?,?)",
                (
                    image.name,
                    _target_json(image.target),
                    json.dumps(lbl, sort_keys=True),
                    encode_time(created),
                    encode_time(updated),
                ),
            )
        return replace(image, labels=lbl, created_at=created, updated_at=updated)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        if not image.name:
            raise InvalidArgument("image name '': must not be empty")
        updated = now()
        with self._db.transaction() as c:
            row = c.execute("SELECT * FROM images WHERE name=?", (image.name,)).fetchone()
            if row is None:
                raise NotFound(f"image {image.name}: not found")
            cur = _image(row)
            target, lbl = cur.target, dict(cur.labels)
            if not fieldpaths:
                target, lbl = image.target, _labels.validate_all(image.labels)
            for p in fieldpaths:
                if p == "labels" or p.startswith("labels."):
                    lbl = _labels.apply_fieldpaths(lbl, image.labels, [p])
                elif p == "target":
                    target = image.target
                elif p == "annotations" or p.startswith("annotations."):
                    ann = _labels.apply_fieldpaths(
                        target.annotations, image.target.annotations, [p], prefix="annotations"
                    )
                    target = replace(target, annotations=ann)
                else:
                    raise InvalidArgument(f"field path {p!r}: cannot update image")
            new = Image(
                name=image.name,
                target=target,
                labels=lbl,
                created_at=cur.created_at,
                updated_at=updated,
            )
            validate_image(new)
            c.execute(
                "UPDATE images SET target=?, labels=?, updated=? WHERE name=?",
                (
                    _target_json(target),
                    json.dumps(lbl, sort_keys=True),
                    encode_time(updated),
                    image.name,
                ),
            )
        return new

    def delete(self, name: str, *, sync: bool = False) -> None:
        with self._db.transaction() as c:
            delete_one(c, "DELETE FROM images WHERE name=?", (name,), f"image {name}: not found")
        if sync:
            self._collect()


def _image_field(img: Image) -> Callable[[Sequence[str]], tuple[str, bool]]:
    """The filter adaptor of an image: ``name``, ``target.digest``, ``target.mediatype``,
    ``labels.<key>``, ``annotations.<key>``."""

    def field(path: Sequence[str]) -> tuple[str, bool]:
        p = list(path)
        if p == ["name"]:
            return img.name, True
        if p in (["target", "digest"], ["digest"]):
            return str(img.target.digest), True
        if p in (["target", "mediatype"], ["target", "mediaType"]):
            return img.target.media_type, True
        if p and p[0] in ("labels", "annotations") and len(p) > 1:
            labels = img.labels if p[0] == "labels" else img.target.annotations
            v = labels.get(".".join(p[1:]))
            return (v, True) if v is not None else ("", False)
        return "", False

    return field
