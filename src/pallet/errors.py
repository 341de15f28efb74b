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
    """Base class of every error pallet raises on purpose.

    Example::

        try:
            store.pull("registry.example.com/app:1")
        except pallet.Error as exc:
            print(f"pallet: {exc}")  # one line, naming the value at fault
    """


class NotFound(Error, LookupError):
    """The named object does not exist.

    Example::

        try:
            store.image("nosuch:1")
        except pallet.NotFound:
            ...
    """


class AlreadyExists(Error):
    """The object exists already; idempotent callers treat this as success.

    Example::

        try:
            store.leases.create("build-1")
        except pallet.AlreadyExists:
            pass  # someone made it first: fine
    """


class InvalidArgument(Error, ValueError):
    """An input value is malformed or out of range.

    Example::

        try:
            store.export([pallet.Layer("dist")], compression="brotli")
        except pallet.InvalidArgument as exc:
            print(exc)  # names the value: compression 'brotli' …
    """


class FailedPrecondition(Error):
    """The system is not in a state that allows the operation.

    Example::

        store.close()
        try:
            store.images()
        except pallet.FailedPrecondition as exc:
            print(exc)  # store /tmp/pallet-doc: closed
    """


class DigestMismatch(FailedPrecondition):
    """Data did not hash (or size) to what was expected.

    Example::

        try:
            store.load("tampered.tar")
        except pallet.DigestMismatch as exc:
            print(exc)  # nothing of the archive was kept
    """


class Unavailable(Error):
    """Temporarily unavailable (for example an ingest ref held by another writer).

    Example::

        try:
            store.push("registry.example.com/app:1")
        except pallet.Unavailable:
            ...  # worth retrying later
    """


class Unsupported(Error):
    """The operation or input is not supported.

    Example::

        try:
            store.load("schema1-image.tar")
        except pallet.Unsupported as exc:
            print(exc)
    """


class Conflict(Error):
    """A concurrent change won.

    Example::

        try:
            store.tag("app:1", "app:latest")
        except pallet.Conflict:
            ...  # another writer changed the name first; read again and retry
    """
