"""pallet: a daemonless container-image exporter, as a library.

Everything in ``__all__`` is the public API (semantic versioning applies to it): :class:`Store`
and its calls, the value types that go in and come out, the data model (:class:`Descriptor`,
:class:`Platform`, :class:`Digest`, :class:`Reference`), the :class:`Progress` events and the
error classes. Modules whose names start with ``_``, and every subpackage, are internal.

``import pallet`` loads no HTTP stack, compression codec or gRPC: those load on the first call
that needs them.
"""

from __future__ import annotations

from ._export import parse_output
from ._store import Store
from ._types import (
    ArchiveImage,
    Config,
    ContainerdVersion,
    ContentInfo,
    CopyResult,
    ExportResult,
    FsckProblem,
    FsckReport,
    GCStats,
    Image,
    IngestStatus,
    Layer,
    Lease,
    LeaseResource,
    RootFS,
    UnpackResult,
)
from ._views import ContentStore, LeaseManager
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
from .oci.reference import Reference
from .progress import Progress

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ArchiveImage",
    "Config",
    "Conflict",
    "ContainerdVersion",
    "ContentInfo",
    "ContentStore",
    "CopyResult",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "Error",
    "ExportResult",
    "FailedPrecondition",
    "FsckProblem",
    "FsckReport",
    "GCStats",
    "Image",
    "IngestStatus",
    "InvalidArgument",
    "Layer",
    "Lease",
    "LeaseManager",
    "LeaseResource",
    "NotFound",
    "Platform",
    "Progress",
    "Reference",
    "RootFS",
    "Store",
    "Unavailable",
    "UnpackResult",
    "Unsupported",
    "__version__",
    "parse_output",
]
