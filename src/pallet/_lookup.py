"""What several areas of :class:`pallet.Store` share: finding an image by the name a user typed,
turning a store record into the public :class:`pallet.Image`, reading a platform argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import Image
from .errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from .content import Store as ContentStore
    from .images import Image as Record
    from .images import ImageStore
    from .oci.descriptor import Platform

__all__ = ["find_image", "image_of", "parse_platform"]


def parse_platform(platform: str | Platform | None) -> Platform | None:
    """``platform`` as a :class:`~pallet.Platform` (``"linux/arm64"`` parsed)."""
    from .oci.descriptor import Platform

    if platform is None or isinstance(platform, Platform):
        return platform
    return Platform.parse(platform)


def find_image(images: ImageStore, ref: str) -> Record:
    """The image named ``ref`` as written, else by its normalised form (``foo`` ->
    ``docker.io/library/foo:latest``), as ``docker`` and ``ctr`` resolve a name.

    Raises:
        NotFound: ``image <ref>: not found``.
    """
    from .oci.reference import Reference

    try:
        return images.get(ref)
    except NotFound:
        pass
    try:
        full = str(Reference.parse(ref))
    except InvalidArgument:
        raise NotFound(f"image {ref}: not found") from None
    try:
        return images.get(full)
    except NotFound:
        raise NotFound(f"image {ref}: not found") from None


def _size(content: ContentStore, record: Record) -> int:
    """Bytes of every blob the image references, each once: manifests and indexes the store
    holds are opened for their children; what it lacks (the other platforms of a pulled index)
    counts by its descriptor's size, as ``docker images`` counts it."""
    from .images import children
    from .oci import mediatypes as mt

    seen: set[str] = set()
    total = 0
    stack = [record.target]
    while stack:
        d = stack.pop()
        if d.digest in seen:
            continue
        seen.add(d.digest)
        total += d.size
        if not (mt.is_manifest(d.media_type) or mt.is_index(d.media_type)):
            continue
        try:
            stack.extend(children(content, d))
        except (NotFound, InvalidArgument):
            # not in the store, removed while read, or not a JSON manifest (fsck reports that):
            # a listing still shows the image
            continue
    return total


def image_of(content: ContentStore, record: Record) -> Image:
    """The public :class:`pallet.Image` of a store record."""
    t = record.target
    return Image(
        name=record.name,
        digest=str(t.digest),
        media_type=t.media_type,
        size=_size(content, record),
        root_size=t.size,
        labels=dict(record.labels),
        created=record.created_at,
        updated=record.updated_at,
        target=t,
    )
