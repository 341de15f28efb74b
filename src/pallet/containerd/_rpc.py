"""The gRPC connection to containerd: channel, call headers, method table and error mapping.

Every call carries the header ``containerd-namespace: <ns>``; calls made for work under a lease
also carry ``containerd-lease: <id>``, which makes the daemon attach whatever the call creates
(ingests, blobs, snapshots) to that lease (spec/containerd.md §2.1, §2.3).

gRPC status codes become pallet error classes at this one boundary (:func:`map_error`), the
inverse of containerd's ``errdefs.ToGRPC``. ``grpc`` is imported lazily so that importing
:mod:`pallet.containerd` costs nothing until a daemon is used.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from ..errors import (
    AlreadyExists,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unsupported,
)
from ._proto import load

__all__ = ["Connection", "Service", "map_error", "one_line"]

#: the server's limit each way is 16 MiB; stay below it with room for the envelope
MAX_MESSAGE = 16 << 20

# service -> (proto module, package)
_SERVICES = {
    "Content": ("content", "containerd.services.content.v1"),
    "Images": ("images", "containerd.services.images.v1"),
    "Leases": ("leases", "containerd.services.leases.v1"),
    "Snapshots": ("snapshots", "containerd.services.snapshots.v1"),
    "Diff": ("diff", "containerd.services.diff.v1"),
    "Version": ("version", "containerd.services.version.v1"),
}
# (service, method) -> (kind, request message, response message); "Empty" is google's
_METHODS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("Version", "Version"): ("unary", "Empty", "VersionResponse"),
    ("Content", "Info"): ("unary", "InfoRequest", "InfoResponse"),
    ("Content", "Update"): ("unary", "UpdateRequest", "UpdateResponse"),
    ("Content", "List"): ("server_stream", "ListContentRequest", "ListContentResponse"),
    ("Content", "Delete"): ("unary", "DeleteContentRequest", "Empty"),
    ("Content", "Read"): ("server_stream", "ReadContentRequest", "ReadContentResponse"),
    ("Content", "Status"): ("unary", "StatusRequest", "StatusResponse"),
    ("Content", "ListStatuses"): ("unary", "ListStatusesRequest", "ListStatusesResponse"),
    ("Content", "Write"): ("bidi", "WriteContentRequest", "WriteContentResponse"),
    ("Content", "Abort"): ("unary", "AbortRequest", "Empty"),
    ("Images", "Get"): ("unary", "GetImageRequest", "GetImageResponse"),
    ("Images", "List"): ("unary", "ListImagesRequest", "ListImagesResponse"),
    ("Images", "Create"): ("unary", "CreateImageRequest", "CreateImageResponse"),
    ("Images", "Update"): ("unary", "UpdateImageRequest", "UpdateImageResponse"),
    ("Images", "Delete"): ("unary", "DeleteImageRequest", "Empty"),
    ("Leases", "Create"): ("unary", "CreateRequest", "CreateResponse"),
    ("Leases", "Delete"): ("unary", "DeleteRequest", "Empty"),
    ("Leases", "List"): ("unary", "ListRequest", "ListResponse"),
    ("Leases", "AddResource"): ("unary", "AddResourceRequest", "Empty"),
    ("Leases", "DeleteResource"): ("unary", "DeleteResourceRequest", "Empty"),
    ("Leases", "ListResources"): ("unary", "ListResourcesRequest", "ListResourcesResponse"),
    ("Snapshots", "Prepare"): ("unary", "PrepareSnapshotRequest", "PrepareSnapshotResponse"),
    ("Snapshots", "View"): ("unary", "ViewSnapshotRequest", "ViewSnapshotResponse"),
    ("Snapshots", "Mounts"): ("unary", "MountsRequest", "MountsResponse"),
    ("Snapshots", "Commit"): ("unary", "CommitSnapshotRequest", "Empty"),
    ("Snapshots", "Remove"): ("unary", "RemoveSnapshotRequest", "Empty"),
    ("Snapshots", "Stat"): ("unary", "StatSnapshotRequest", "StatSnapshotResponse"),
    ("Snapshots", "Update"): ("unary", "UpdateSnapshotRequest", "UpdateSnapshotResponse"),
    ("Snapshots", "List"): ("server_stream", "ListSnapshotsRequest", "ListSnapshotsResponse"),
    ("Snapshots", "Usage"): ("unary", "UsageRequest", "UsageResponse"),
    ("Diff", "Apply"): ("unary", "ApplyRequest", "ApplyResponse"),
}

# gRPC status code name -> pallet error class (containerd errdefs.FromGRPC)
_CODES: dict[str, type[Error]] = {
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": AlreadyExists,
    "INVALID_ARGUMENT": InvalidArgument,
    "FAILED_PRECONDITION": FailedPrecondition,
    "UNAVAILABLE": Unavailable,
    "UNIMPLEMENTED": Unsupported,
    "OUT_OF_RANGE": InvalidArgument,  # content Write at an offset other than the current one
    "DEADLINE_EXCEEDED": Unavailable,
    "RESOURCE_EXHAUSTED": Unavailable,
    "PERMISSION_DENIED": FailedPrecondition,
    "UNAUTHENTICATED": FailedPrecondition,
}
# substrings of UNAVAILABLE details that mean "no daemon there", not "ref locked"
_TRANSPORT = (
    "failed to connect",
    "connection refused",
    "no such file",
    "socket closed",
    "connect failed",
    "permission denied",
    "connection reset",
    "broken pipe",
    "dns resolution failed",
)


def one_line(text: str, limit: int = 400) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def map_error(exc: BaseException, what: str, address: str = "") -> Error:
    """The pallet error for a failed call; ``what`` names the object (``content sha256:…``)."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    name = "UNKNOWN"
    text = str(exc)
    if callable(code):
        try:
            c = code()
            name = getattr(c, "name", str(c))
            text = (details() if callable(details) else "") or name.lower().replace("_", " ")
        except Exception:
            pass
    text = one_line(text)
    if name == "UNAVAILABLE" and any(t in text.lower() for t in _TRANSPORT):
        return Unavailable(f"containerd at {address or '?'}: not reachable: {text}")
    if name == "CANCELLED":
        return Unavailable(f"{what}: cancelled: {text}")
    cls = _CODES.get(name, Error)
    return cls(f"{what}: {text}")


class Connection:
    """One channel to one containerd socket; thread-safe, shared by namespaced clients."""

    def __init__(self, address: str) -> None:
        import grpc  # type: ignore[import-untyped, unused-ignore]

        self.address = address
        self.pb = load()
        from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
            empty_pb2,
            field_mask_pb2,
        )

        self._empty = empty_pb2.Empty
        #: ``google.protobuf.FieldMask``
        self.field_mask: Any = field_mask_pb2.FieldMask
        self._channel: Any = grpc.insecure_channel(
            f"unix://{address}",
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.default_authority", "localhost"),
            ],
        )
        self._calls: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._channel.close()

    def message(self, service: str, name: str) -> Any:
        """The message class ``name`` of ``service``'s proto file (or ``types``)."""
        if name == "Empty":
            return self._empty
        mod = getattr(self.pb, _SERVICES[service][0] if service in _SERVICES else service)
        return getattr(mod, name)

    def _callable(self, service: str, method: str) -> tuple[str, Any]:
        key = (service, method)
        with self._lock:
            c = self._calls.get(key)
            kind, req, resp = _METHODS[key]
            if c is None:
                path = f"/{_SERVICES[service][1]}.{service}/{method}"
                if kind == "unary":
                    factory = self._channel.unary_unary
                elif kind == "server_stream":
                    factory = self._channel.unary_stream
                else:
                    factory = self._channel.stream_stream
                c = factory(
                    path,
                    request_serializer=self.message(service, req).SerializeToString,
                    response_deserializer=self.message(service, resp).FromString,
                )
                self._calls[key] = c
            return kind, c

    @staticmethod
    def headers(namespace: str, lease: str | None = None) -> tuple[tuple[str, str], ...]:
        if lease:
            return (("containerd-namespace", namespace), ("containerd-lease", lease))
        return (("containerd-namespace", namespace),)

    @contextlib.contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """gRPC errors raised inside become pallet errors naming ``what`` (:func:`map_error`)."""
        try:
            yield
        except Exception as exc:
            if _is_rpc_error(exc):
                raise map_error(exc, what, self.address) from None
            raise

    def call(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        namespace: str,
        what: str,
        lease: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The response of a unary method; of a server-streaming one, an iterator of its
        responses that starts the call when first read and cancels it if the caller stops
        (``timeout`` is for unary calls). The method table says which kind a method is."""
        kind, c = self._callable(service, method)
        if kind == "server_stream":
            return self._responses(c, request, self.headers(namespace, lease), what)
        with self._mapped(what):
            return c(request, metadata=self.headers(namespace, lease), timeout=timeout)

    def _responses(
        self, c: Any, request: Any, metadata: tuple[tuple[str, str], ...], what: str
    ) -> Iterator[Any]:
        call = c(request, metadata=metadata)
        try:
            with self._mapped(what):
                yield from call
        finally:
            call.cancel()

    def bidi(
        self,
        service: str,
        method: str,
        requests: Iterable[Any],
        *,
        namespace: str,
        lease: str | None = None,
    ) -> Any:
        """Start a bidirectional stream; returns the call (an iterator of responses)."""
        _, c = self._callable(service, method)
        return c(iter(requests), metadata=self.headers(namespace, lease))


class Service:
    """A client of one containerd service (``SERVICE``) in one namespace."""

    SERVICE: ClassVar[str]

    def __init__(self, conn: Connection, namespace: str) -> None:
        self._conn = conn
        self.namespace = namespace

    def _call(self, method: str, req: Any, what: str, lease: str | None = None) -> Any:
        return self._conn.call(
            self.SERVICE, method, req, namespace=self.namespace, what=what, lease=lease
        )


def _is_rpc_error(exc: BaseException) -> bool:
    import grpc  # type: ignore[import-untyped, unused-ignore]

    return isinstance(exc, grpc.RpcError)
