"""pallet: a daemonless container-image exporter.

``import pallet`` stays light (the command line starts with it): the error classes are imported
eagerly, :class:`Descriptor`, :class:`Platform` and :class:`Digest` on first use.
"""

from __future__ import annotations

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

# ``typing`` (with ``re`` and ``enum``) would be most of this package's import time; mypy reads a
# constant named TYPE_CHECKING as ``typing.TYPE_CHECKING``
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .oci.descriptor import Descriptor, Platform
    from .oci.digest import Digest
del TYPE_CHECKING

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
