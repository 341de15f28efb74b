"""Pure OCI data model: digests, descriptors, media types. No filesystem, no network.

The names below are imported on first access, so importing a submodule (``pallet.oci.digest``)
does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .descriptor import Descriptor, Platform
    from .digest import Digest, Digester

__all__ = ["Descriptor", "Digest", "Digester", "Platform"]

_LAZY = ("Descriptor", "Digest", "Digester", "Platform")


def __getattr__(name: str) -> Any:
    if name in ("Descriptor", "Platform"):
        from . import descriptor

        value = getattr(descriptor, name)
    elif name in ("Digest", "Digester"):
        from . import digest

        value = getattr(digest, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
