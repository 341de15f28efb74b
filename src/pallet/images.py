"""Image records and the image store interface (containerd ``core/images``), plus graph walking.

An image is a *name* pointing at a root descriptor (a manifest or an index). The walkers decode
manifests and indexes to find children; they need only a content :class:`~pallet.content.Provider`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .content import Provider
from .errors import InvalidArgument
from .oci import mediatypes as mt
from .oci.descriptor import Descriptor

__all__ = [
    "Image",
    "ImageStore",
    "children",
    "decode_json",
    "read_json",
    "traverse",
    "validate_image",
    "walk",
]

MAX_MANIFEST = 4 << 20  # the distribution spec's suggested manifest size limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ImageStore(Protocol):
    """Named images. ``create`` raises AlreadyExists, ``update``/``get``/``delete`` NotFound."""

    def get(self, name: str) -> Image: ...
    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]: ...
    def create(self, image: Image) -> Image: ...
    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image: ...
    def delete(self, name: str, *, sync: bool = False) -> None: ...


def validate_image(image: Image) -> None:
    """The checks containerd makes on create/update.

    Raises:
        InvalidArgument: empty name, or a target without media type, digest or a size > 0.
    """
    if not image.name or any(c in image.name for c in "\x00\n\t "):
        raise InvalidArgument(f"image name {image.name!r}: invalid")
    t = image.target
    if not t.media_type:
        raise InvalidArgument(f"image {image.name}: target media type must not be empty")
    if not t.digest:
        raise InvalidArgument(f"image {image.name}: target digest must not be empty")
    if t.size <= 0:
        raise InvalidArgument(f"image {image.name}: target size must be greater than zero")


def decode_json(data: bytes, what: str, digest: str) -> dict[str, Any]:
    """``data`` as a JSON object; errors name ``<what> <digest>``.

    Raises:
        InvalidArgument: not JSON, or JSON that is not an object.
    """
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"{what} {digest}: invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what} {digest}: not a JSON object")
    return obj


def read_json(
    provider: Provider, desc: Descriptor, what: str = "manifest", limit: int = MAX_MANIFEST
) -> dict[str, Any]:
    """The blob ``desc`` as a JSON object, refused above ``limit`` bytes (a manifest, a config).

    Raises:
        InvalidArgument: larger than ``limit``, not JSON, or not an object.
    """
    with provider.open(desc) as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise InvalidArgument(f"{what} {desc.digest}: larger than {limit} bytes")
    return decode_json(raw, what, desc.digest)


def children(provider: Provider, desc: Descriptor) -> list[Descriptor]:
    """The direct children of a manifest (config, layers) or an index (manifests)."""
    if mt.is_manifest(desc.media_type):
        obj = read_json(provider, desc)
        out = [Descriptor.from_json(obj["config"])] if "config" in obj else []
        out.extend(Descriptor.from_json(layer) for layer in obj.get("layers") or ())
        return out
    if mt.is_index(desc.media_type):
        obj = read_json(provider, desc)
        return [Descriptor.from_json(m) for m in obj.get("manifests") or ()]
    return []


def traverse(
    root: Descriptor, expand: Callable[[Descriptor], Iterable[Descriptor]]
) -> Iterator[Descriptor]:
    """Each digest under ``root`` once, depth-first: yields a descriptor, then pushes what
    ``expand`` gives for it (the last pushed is visited next; ``[]`` prunes the branch)."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        if d.digest in seen:
            continue
        seen.add(d.digest)
        yield d
        stack.extend(expand(d))


def walk(
    provider: Provider, root: Descriptor, handler: Callable[[Descriptor], None] | None = None
) -> Iterator[Descriptor]:
    """Depth-first, parents before children, each digest once."""
    for d in traverse(root, lambda d: reversed(children(provider, d))):
        if handler is not None:
            handler(d)
        yield d
