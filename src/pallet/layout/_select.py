"""Choosing one platform's manifest out of an index (containerd ``platforms.Only`` in spirit)."""

from __future__ import annotations

from ..content import Provider
from ..errors import InvalidArgument, NotFound
from ..images import children
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform

__all__ = ["normalize", "select_manifest"]

_MAX_DEPTH = 8  # nested indexes followed at most


def normalize(p: Platform) -> Platform | None:
    """``p`` with containerd's normalisation (aliases, arm variants), or None if unusable."""
    spec = f"{p.os}/{p.architecture}" + (f"/{p.variant}" if p.variant else "")
    try:
        return Platform.parse(spec)
    except InvalidArgument:
        return None


def _rank(want: Platform, have: Platform | None) -> int | None:
    """0 for an exact match, 1 for a match on os/architecture only, None for no match."""
    if have is None:
        return None
    h = normalize(have)
    if h is None or h.os != want.os or h.architecture != want.architecture:
        return None
    if h.variant == want.variant:
        return 0
    return 1 if not want.variant else None


def select_manifest(
    provider: Provider, desc: Descriptor, platform: Platform, *, _depth: int = 0
) -> Descriptor:
    """The manifest of ``platform`` reachable from ``desc`` (itself if it is a manifest).

    Raises:
        NotFound: the index has no manifest for the platform.
        InvalidArgument: ``desc`` is neither a manifest nor an index, or indexes nest too deep.
    """
    if mt.is_manifest(desc.media_type):
        return desc
    if not mt.is_index(desc.media_type) or _depth > _MAX_DEPTH:
        raise InvalidArgument(f"image {desc.digest}: not a manifest or index ({desc.media_type})")
    want = normalize(platform) or platform
    best: tuple[int, int, Descriptor] | None = None
    for i, child in enumerate(children(provider, desc)):
        rank = _rank(want, child.platform)
        if rank is not None and (best is None or (rank, i) < best[:2]):
            best = (rank, i, child)
    if best is None:
        have = sorted({str(c.platform) for c in children(provider, desc) if c.platform})
        raise NotFound(
            f"image {desc.digest}: no manifest for platform {want}"
            + (f" (has {', '.join(have)})" if have else "")
        )
    return select_manifest(provider, best[2], platform, _depth=_depth + 1)
