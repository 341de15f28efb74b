"""pallet: a daemonless container-image exporter.

The command line starts with ``import pallet``, so this imports the error classes only;
:class:`Descriptor`, :class:`Platform` and :class:`Digest` (which bring ``dataclasses`` and
``inspect``) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AlreadyExists,
    Conflict,
    DigestMismatch,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unsupported,
)

if TYPE_CHECKING:
    from .oci.descriptor import Descriptor, Platform
    from .oci.digest import Digest

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "Error",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Platform",
    "Unavailable",
    "Unsupported",
    "__version__",
]

#: public names imported on first access
_LAZY = ("Descriptor", "Digest", "Platform")


def __getattr__(name: str) -> object:
    if name in ("Descriptor", "Platform"):
        from .oci import descriptor

        value = getattr(descriptor, name)
    elif name == "Digest":
        from .oci import digest

        value = getattr(digest, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
