"""Error classes, after containerd's errdefs.

Every failure pallet reports belongs to one *class*; callers test the class, never the message::

    Error
     ├── NotFound            (also LookupError)   content/image/lease/snapshot absent
     ├── AlreadyExists                            commit of a present blob, duplicate name/key
     ├── InvalidArgument     (also ValueError)    bad digest, ref, label, field path, option
     ├── FailedPrecondition                       state does not allow the call
     │    └── DigestMismatch                      size or digest differs from the expected one
     ├── Unavailable                              busy (ingest ref locked); retryable
     ├── Unsupported                              not implemented for this input
     └── Conflict                                 concurrent modification lost

Messages have the shape ``<noun> <id>: <what>`` so that a one-line error names the offending value.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DigestMismatch",
    "Error",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Unavailable",
    "Unsupported",
]


class Error(Exception):
    """Base class of every error pallet raises on purpose."""


class NotFound(Error, LookupError):
    """The named object does not exist."""


class AlreadyExists(Error):
    """The object exists already; idempotent callers treat this as success."""


class InvalidArgument(Error, ValueError):
    """An input value is malformed or out of range."""


class FailedPrecondition(Error):
    """The system is not in a state that allows the operation."""


class DigestMismatch(FailedPrecondition):
    """Data did not hash (or size) to what was expected."""


class Unavailable(Error):
    """Temporarily unavailable (for example an ingest ref held by another writer)."""


class Unsupported(Error):
    """The operation or input is not supported."""


class Conflict(Error):
    """A concurrent change won."""
