"""pallet: a daemonless container-image exporter."""

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
