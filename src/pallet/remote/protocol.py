"""Sans-IO distribution protocol: request builders, response checks and the multi-step flows.

Nothing here opens a socket. A *flow* is a generator that yields a :class:`Request` (or a
:class:`Sleep`) and receives the :class:`Response`; a driver (``remote.client.Session.run``) sends
the requests, and may instead *throw* :class:`ConnectionLost` into the flow when a connection
breaks, so that the flow decides how to recover::

    def flow() -> Flow[int]:
        resp = yield Request(method="HEAD", url=url, retry=True)
        return resp.status

Upload theory of operation (distribution-spec "Pushing blobs"): HEAD the blob (present: done);
try cross-repository mounts (``201``: done, ``202``: the registry opened an upload session, use
it; anything else: fall back silently, as registries answer 401/404/400 for sources they will not
mount); otherwise ``POST`` for a session. Small blobs go in one ``PUT ?digest=``. Larger ones go in
chunks (``Content-Range``, at least ``OCI-Chunk-Min-Length``): ``PATCH``\\ es, then the closing
``PUT ?digest=`` with the last chunk (the spec's "Completed Upload"; the conformance suite sends
it so). Each ``202`` carries the next ``Location`` and the ``Range`` the registry holds. When a
chunk fails (connection dropped, 5xx, 416) the flow ``GET``\\ s the upload location, reads
``Range`` and continues from there rather than from byte 0. A session the registry no longer
knows (404, ``BLOB_UPLOAD_INVALID``) is abandoned (``DELETE``, failures ignored) and the blob
starts over, at most ``attempts`` times.

Chunk sizes: a proxy that buffers whole requests before forwarding them (nginx's default
``proxy_request_buffering on``) passes nothing of a request whose connection drops, so a drop
costs the whole request it hit. The first chunk is small (``chunk_size``) and each accepted
chunk doubles the next, up to ``chunk_max``; a tail smaller than the first chunk rides with the
last one. A drop early in a blob costs at most one small chunk, and a drop later at most about
what was already accepted, while a smooth upload needs few requests. After a failed chunk every
later chunk of the run is ``chunk_size`` again (a shared :class:`Trouble` flag).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from ..errors import DigestMismatch, FailedPrecondition, InvalidArgument, Unavailable
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest, Digester
from .errors import (
    TEMPORARY_CODES,
    RegistryError,
    RegistryNotFound,
    Unauthorized,
    decode_errors,
    redact_url,
)

__all__ = [
    "MANIFEST_ACCEPT",
    "MAX_MANIFEST",
    "RETRY_STATUSES",
    "BlobSink",
    "BodyRange",
    "ConnectionLost",
    "Flow",
    "Headers",
    "PushOutcome",
    "Request",
    "Response",
    "RetryPolicy",
    "Sleep",
    "Step",
    "StreamOpener",
    "Trouble",
    "check",
    "fetch_blob",
    "get_manifest",
    "head_manifest",
    "parse_range",
    "parse_retry_after",
    "push_manifest",
    "upload_blob",
]

T = TypeVar("T")

MAX_MANIFEST = 4 << 20
RETRY_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504, 522, 524})
MANIFEST_ACCEPT = ", ".join(
    [mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST]
)
OCTET = "application/octet-stream"


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only headers; :meth:`get_all` keeps repeated fields."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple(items)
        m: dict[str, str] = {}
        for k, v in self._items:
            m.setdefault(k.lower(), v)
        self._map = m

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def get_all(self, key: str) -> list[str]:
        k = key.lower()
        return [v for n, v in self._items if n.lower() == k]

    def items_raw(self) -> tuple[tuple[str, str], ...]:
        return self._items


BodySource = Callable[[int, int], Iterator[bytes]]
StreamOpener = Callable[[int, Headers], Callable[[bytes], None] | None]


@dataclass(frozen=True, slots=True)
class BodyRange:
    """``length`` bytes of a blob from ``offset``; re-readable, so a request can be resent."""

    source: BodySource
    offset: int
    length: int

    def chunks(self) -> Iterator[bytes]:
        return self.source(self.offset, self.length)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One HTTP request, as data.

    ``retry`` lets the driver resend it (connection errors, :data:`RETRY_STATUSES`) because it is
    idempotent or its body can be replayed; requests that move an upload forward leave it off and
    recover in their flow. ``stream`` receives the status and headers of the answer and returns a
    consumer for the body (or ``None`` to have it read into :attr:`Response.body`).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | BodyRange | None = None
    scopes: tuple[str, ...] = ()
    retry: bool = False
    stream: StreamOpener | None = None
    what: str = ""

    @property
    def content_length(self) -> int:
        if self.body is None:
            return 0
        if isinstance(self.body, BodyRange):
            return self.body.length
        return len(self.body)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    method: str
    url: str
    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Ask the driver to wait (backoff) before the next request."""

    seconds: float


Step = Request | Sleep
Flow = Generator[Step, Response, T]


class ConnectionLost(Unavailable):
    """The connection failed before a complete answer arrived (thrown into flows)."""


class Trouble:
    """Whether an upload chunk of this run has failed yet (shared by the uploads of one push).

    Once set, every later chunk of every upload that shares it is the first chunk size: the
    link has shown it drops requests, and each drop costs the request it hits.
    """

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


class PushOutcome(Enum):
    EXISTS = "exists"
    MOUNTED = "mounted"
    UPLOADED = "uploaded"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``Retry-After`` wins when the registry sends one."""

    attempts: int = 5
    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    max_retry_after: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        base = min(self.max_delay, self.initial * self.factor ** max(0, attempt - 1))
        import random  # on first retry only

        return base * (1 + self.jitter * (2 * random.random() - 1))

    def retryable(self, resp: Response) -> bool:
        if resp.status in self.statuses:
            return True
        return resp.status >= 400 and any(
            d.code in TEMPORARY_CODES - {"BLOB_UPLOAD_UNKNOWN"} for d in decode_errors(resp.body)
        )


#: the policy the flows use when the caller gives none
DEFAULT_RETRY: Final = RetryPolicy()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # HTTP-dates are rare: not at import

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)$")


def parse_range(value: str | None) -> tuple[int, int] | None:
    """``(start, end)`` of an upload ``Range: 0-<end>`` header (inclusive)."""
    if not value:
        return None
    m = _RANGE.match(value.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _describe(resp: Response) -> str:
    text = f"{resp.method} {redact_url(resp.url)}: {resp.status}"
    if resp.reason:
        text += f" {resp.reason}"
    diags = decode_errors(resp.body)
    if diags:
        text += ": " + "; ".join(str(d) for d in diags)
    return text


def check(
    resp: Response, expected: Iterable[int], what: str, *, scopes: Sequence[str] = ()
) -> None:
    """Raise the matching :class:`RegistryError` unless ``resp.status`` is expected."""
    if resp.status in set(expected):
        return
    diags = decode_errors(resp.body)
    message = f"{what}: {_describe(resp)}"
    temporary = resp.status in RETRY_STATUSES or any(d.code in TEMPORARY_CODES for d in diags)
    if resp.status in (401, 403):
        if scopes:
            message += f" (requested scope {' '.join(scopes)})"
        raise Unauthorized(message, status=resp.status, errors=diags, temporary=False)
    if resp.status == 404:
        raise RegistryNotFound(message, status=resp.status, errors=diags)
    raise RegistryError(message, status=resp.status, errors=diags, temporary=temporary)


def _with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    extra = urlencode(list(params), safe=":")
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _location(resp: Response) -> str | None:
    loc = resp.headers.get("Location")
    return urljoin(resp.url, loc) if loc else None


def _repo_url(base: str, repo: str, kind: str, obj: str = "") -> str:
    return f"{base.rstrip('/')}/v2/{repo}/{kind}/{obj}"


# -- manifests -------------------------------------------------------------------------------


def head_manifest(
    base: str, repo: str, obj: str, *, scopes: tuple[str, ...] = ()
) -> Flow[Descriptor | None]:
    """HEAD a manifest; its descriptor if the registry says enough, else None (GET instead).

    Raises:
        RegistryNotFound: the registry does not have it.
    """
    url = _repo_url(base, repo, "manifests", obj)
    resp = yield Request(
        method="HEAD",
        url=url,
        headers={"Accept": MANIFEST_ACCEPT},
        scopes=scopes,
        retry=True,
        what=f"manifest {repo}:{obj}",
    )
    check(resp, (200,), f"manifest {repo}@{obj}" if ":" in obj else f"manifest {repo}:{obj}")
    dgst = resp.headers.get("Docker-Content-Digest")
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
    length = resp.headers.get("Content-Length")
    if not dgst or not ctype or not length or not length.isdigit() or ctype == "application/json":
        return None
    try:
        d = Digest.parse(dgst)
    except InvalidArgument:
        return None
    if obj.startswith(("sha256:", "sha512:")) and d != obj:
        raise DigestMismatch(f"manifest {repo}@{obj}: registry reports digest {d}")
    return Descriptor(media_type=ctype, digest=d, size=int(length))


def _sniff_media_type(body: bytes, declared: str) -> str:
    import json

    try:
        obj = json.loads(body)
    except ValueError:
        return declared
    if isinstance(obj, dict):
        m = obj.get("mediaType")
        if isinstance(m, str) and m:
            return m
        if "manifests" in obj:
            return mt.OCI_INDEX
        if "config" in obj:
            return mt.OCI_MANIFEST
    return declared


def get_manifest(
    base: str, repo: str, obj: str, *, scopes: tuple[str, ...] = ()
) -> Flow[tuple[Descriptor, bytes]]:
    """GET a manifest or index and verify its bytes against the digest asked for or announced.

    Raises:
        DigestMismatch: the body does not hash to the requested or announced digest.
        InvalidArgument: larger than :data:`MAX_MANIFEST`.
    """
    what = f"manifest {repo}@{obj}" if ":" in obj else f"manifest {repo}:{obj}"
    resp = yield Request(
        method="GET",
        url=_repo_url(base, repo, "manifests", obj),
        headers={"Accept": MANIFEST_ACCEPT},
        scopes=scopes,
        retry=True,
        what=what,
    )
    check(resp, (200,), what, scopes=scopes)
    body = resp.body
    if len(body) > MAX_MANIFEST:
        raise InvalidArgument(f"{what}: larger than {MAX_MANIFEST} bytes")
    expected: Digest | None = None
    if obj.startswith(("sha256:", "sha512:")):
        expected = Digest.parse(obj)
    else:
        header = resp.headers.get("Docker-Content-Digest")
        if header:
            try:
                expected = Digest.parse(header)
            except InvalidArgument:
                expected = None
    alg = expected.algorithm if expected else "sha256"
    h = Digester(alg)
    h.update(body)
    got = h.digest()
    if expected is not None and got != expected:
        raise DigestMismatch(f"{what}: content digest {got}, expected {expected}")
    declared = resp.headers.get("Content-Type", "").split(";")[0].strip()
    media_type = _sniff_media_type(body, declared)
    return Descriptor(media_type=media_type, digest=got, size=len(body)), body


def push_manifest(
    base: str,
    repo: str,
    desc: Descriptor,
    data: bytes,
    *,
    tag: str = "",
    scopes: tuple[str, ...] = (),
    check_exists: bool = True,
) -> Flow[PushOutcome]:
    """PUT a manifest under its digest, or under ``tag``, with ``Content-Type`` = its mediaType.

    Raises:
        InvalidArgument: the body's ``mediaType`` differs from the descriptor's (a registry would
            answer ``MANIFEST_INVALID``: spec, "Pushing Manifests").
        DigestMismatch: the registry computed another digest.
    """
    obj = tag or str(desc.digest)
    what = f"manifest {repo}:{tag}" if tag else f"manifest {repo}@{desc.digest}"
    declared = _sniff_media_type(data, desc.media_type)
    if declared != desc.media_type:
        raise InvalidArgument(
            f"{what}: body mediaType {declared!r} differs from descriptor {desc.media_type!r}"
        )
    import hashlib

    if hashlib.new(desc.digest.algorithm, data).hexdigest() != desc.digest.hex:
        raise DigestMismatch(f"{what}: local bytes do not match {desc.digest}")
    url = _repo_url(base, repo, "manifests", obj)
    if check_exists:
        resp = yield Request(
            method="HEAD",
            url=url,
            headers={"Accept": MANIFEST_ACCEPT},
            scopes=scopes,
            retry=True,
            what=what,
        )
        if resp.status == 200 and resp.headers.get("Docker-Content-Digest") == desc.digest:
            return PushOutcome.EXISTS
        if resp.status not in (200, 404):
            check(resp, (200, 404), what, scopes=scopes)
    resp = yield Request(
        method="PUT",
        url=url,
        headers={"Content-Type": desc.media_type},
        body=data,
        scopes=scopes,
        retry=True,  # the same bytes again: idempotent
        what=what,
    )
    check(resp, (200, 201), what, scopes=scopes)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != desc.digest:
        raise DigestMismatch(f"{what}: registry stored digest {got}, expected {desc.digest}")
    return PushOutcome.UPLOADED


# -- blob upload -----------------------------------------------------------------------------


class _Restart(Exception):
    """The upload session is gone or poisoned: start the blob over."""

    def __init__(self, reason: str, resp: Response | None = None) -> None:
        super().__init__(reason)
        self.resp = resp


def _blob_done(resp: Response, desc: Descriptor, what: str) -> PushOutcome:
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != desc.digest:
        raise DigestMismatch(f"{what}: registry stored digest {got}, expected {desc.digest}")
    return PushOutcome.UPLOADED


def upload_blob(
    base: str,
    repo: str,
    desc: Descriptor,
    body: BodySource,
    *,
    mount_from: Sequence[str] = (),
    scopes: tuple[str, ...] = (),
    chunk_size: int = 16 << 20,
    chunk_max: int = 128 << 20,
    monolithic_max: int = 16 << 20,
    policy: RetryPolicy = DEFAULT_RETRY,
    head: bool = True,
    allow_upload: bool = True,
    on_restart: Callable[[str], None] | None = None,
    trouble: Trouble | None = None,
) -> Flow[PushOutcome]:
    """Push one blob: HEAD, mount, then a monolithic PUT or resumable chunks.

    Blobs up to ``monolithic_max`` go in one ``PUT``. Larger ones go in chunks of
    ``chunk_size``, doubling after each accepted chunk up to ``chunk_max`` (never below
    ``chunk_size``), until a chunk fails here or in any upload sharing ``trouble``; the last
    chunk, with any tail smaller than ``chunk_size``, goes in the closing ``PUT``.

    With ``allow_upload=False`` (the blob is not available locally) only HEAD and mounts are
    tried.

    Raises:
        RegistryError: an unexpected status that retrying did not cure (names the blob and the
            last status).
        FailedPrecondition: ``allow_upload`` is off and neither HEAD nor a mount found the blob.
        ConnectionLost: connections kept failing.
    """
    what = f"blob {desc.digest}"
    blob_url = _repo_url(base, repo, "blobs", str(desc.digest))
    uploads = _repo_url(base, repo, "blobs", "uploads/")
    last: Exception | None = None
    trouble = trouble if trouble is not None else Trouble()
    for attempt in range(1, max(1, policy.attempts) + 1):
        if head or attempt > 1:
            resp = yield Request(method="HEAD", url=blob_url, scopes=scopes, retry=True, what=what)
            if resp.status == 200:
                return PushOutcome.EXISTS
            if resp.status != 404:
                check(resp, (200, 404), what, scopes=scopes)
        location: str | None = None
        try:
            if attempt == 1:
                candidates = [src for src in mount_from if src != repo][:3]
                for i, src in enumerate(candidates):
                    resp = yield Request(
                        method="POST",
                        url=_with_query(uploads, [("mount", str(desc.digest)), ("from", src)]),
                        headers={"Content-Length": "0"},
                        scopes=scopes,
                        retry=True,
                        what=what,
                    )
                    if resp.status == 201:
                        return PushOutcome.MOUNTED
                    if resp.status == 202 and _location(resp):
                        if i == len(candidates) - 1:
                            location = _location(resp)
                            break
                        # another source may have it: give this session back and try that one
                        with contextlib.suppress(ConnectionLost):
                            yield Request(
                                method="DELETE", url=_location(resp) or "", scopes=scopes, what=what
                            )
                    # 401 (Harbor), 404/400 (Quay without from), ...: upload instead (silently)
            if not allow_upload:
                if location is not None:
                    with contextlib.suppress(ConnectionLost):
                        yield Request(method="DELETE", url=location, scopes=scopes, what=what)
                tried = ", ".join([s for s in mount_from if s != repo][:3]) or "no source"
                raise FailedPrecondition(
                    f"{what}: not in the local store, not in {repo} and not mountable "
                    f"(tried {tried})"
                )
            if location is None:
                resp = yield Request(
                    method="POST",
                    url=uploads,
                    headers={"Content-Length": "0"},
                    scopes=scopes,
                    retry=True,
                    what=what,
                )
                check(resp, (202,), what, scopes=scopes)
                location = _location(resp)
                if location is None:
                    raise RegistryError(
                        f"{what}: POST {redact_url(resp.url)}: 202 without a Location header",
                        status=202,
                    )
            min_chunk = resp.headers.get("OCI-Chunk-Min-Length", "")
            first = max(chunk_size, int(min_chunk) if min_chunk.isdigit() else 0, 1)
            if desc.size <= monolithic_max:
                return (yield from _put_whole(location, desc, body, scopes, what))
            sizes = _Sizes(first, max(first, chunk_max), trouble)
            return (yield from _chunked(location, desc, body, scopes, what, sizes, policy))
        except _Restart as exc:
            last = exc
            if on_restart is not None:
                on_restart(str(exc))
            if location is not None:
                # spec: clients SHOULD cancel abandoned uploads, ignoring failures
                with contextlib.suppress(ConnectionLost):
                    yield Request(method="DELETE", url=location, scopes=scopes, what=what)
            if attempt < policy.attempts:
                ra = parse_retry_after(exc.resp.headers.get("Retry-After")) if exc.resp else None
                yield Sleep(policy.delay(attempt, ra))
    if isinstance(last, _Restart) and last.resp is not None:
        check(last.resp, (), f"{what}: giving up after {policy.attempts} attempts", scopes=scopes)
    raise Unavailable(f"{what}: giving up after {policy.attempts} attempts: {last}")


def _put_whole(
    location: str, desc: Descriptor, body: BodySource, scopes: tuple[str, ...], what: str
) -> Flow[PushOutcome]:
    try:
        resp = yield Request(
            method="PUT",
            url=_with_query(location, [("digest", str(desc.digest))]),
            headers={"Content-Type": OCTET},
            body=BodyRange(body, 0, desc.size),
            scopes=scopes,
            what=what,
        )
    except ConnectionLost as exc:
        raise _Restart(f"connection lost during PUT: {exc}") from None
    if resp.status in (201, 204):
        return _blob_done(resp, desc, what)
    if _restartable(resp):
        raise _Restart(_describe(resp), resp)
    check(resp, (201,), what, scopes=scopes)
    raise AssertionError("unreachable")


def _restartable(resp: Response) -> bool:
    codes = {d.code for d in decode_errors(resp.body)}
    return (
        resp.status in RETRY_STATUSES
        or resp.status == 416
        or (resp.status == 404 and "BLOB_UNKNOWN" not in codes)
        or bool(codes & {"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID"})
    )


class _Sizes:
    """The chunk sizes of one upload: ``first``, doubled after each accepted chunk up to
    ``largest``, back to ``first`` for good once a chunk of the run failed."""

    __slots__ = ("first", "largest", "next", "trouble")

    def __init__(self, first: int, largest: int, trouble: Trouble) -> None:
        self.first, self.largest, self.trouble = first, largest, trouble
        self.next = first

    def accepted(self) -> None:
        self.next = self.first if self.trouble.seen else min(self.next * 2, self.largest)

    def failed(self) -> None:
        self.trouble.seen = True
        self.next = self.first


def _chunked(
    location: str,
    desc: Descriptor,
    body: BodySource,
    scopes: tuple[str, ...],
    what: str,
    sizes: _Sizes,
    policy: RetryPolicy,
) -> Flow[PushOutcome]:
    offset = 0
    failures = 0
    while True:
        # the rest goes with the closing PUT once it fits in this chunk, or would leave a tail
        # smaller than a first chunk: each request waits for the registry to write its chunk
        # out (distribution fsyncs it), so a small last request costs as much as a large one
        rest = desc.size - offset
        final = rest <= sizes.next or (offset > 0 and rest < sizes.next + sizes.first)
        n = rest if final else sizes.next
        headers = {"Content-Type": OCTET}
        if n:
            headers["Content-Range"] = f"{offset}-{offset + n - 1}"
        else:  # the registry holds every byte already: close the upload
            headers["Content-Length"] = "0"
        resp: Response | None
        lost: ConnectionLost | None = None
        try:
            resp = yield Request(
                method="PUT" if final else "PATCH",
                url=_with_query(location, [("digest", str(desc.digest))]) if final else location,
                headers=headers,
                body=BodyRange(body, offset, n) if n else None,
                scopes=scopes,
                what=what,
            )
        except ConnectionLost as exc:
            resp, lost = None, exc
        if resp is not None and final and resp.status in (201, 204):
            return _blob_done(resp, desc, what)
        if resp is not None and not final and resp.status in (202, 204):
            location = _location(resp) or location
            rng = parse_range(resp.headers.get("Range"))
            offset = rng[1] + 1 if rng is not None and rng[1] + 1 <= offset + n else offset + n
            failures = 0
            sizes.accepted()
            continue
        if resp is not None and not (resp.status in policy.statuses or resp.status == 416):
            if _restartable(resp):
                raise _Restart(_describe(resp), resp)
            check(resp, (201,) if final else (202,), what, scopes=scopes)
        sizes.failed()
        failures += 1
        if failures >= policy.attempts:
            if resp is not None:
                raise _Restart(_describe(resp), resp)
            raise _Restart(f"connection lost during {'PUT' if final else 'PATCH'}: {lost}")
        ra = parse_retry_after(resp.headers.get("Retry-After")) if resp is not None else None
        yield Sleep(policy.delay(failures, ra))
        # where is the registry? (spec: GET <location> -> 204 with Range); a closing PUT that
        # did arrive leaves no session (404): the restart's HEAD then finds the blob
        try:
            status = yield Request(method="GET", url=location, scopes=scopes, retry=True, what=what)
        except ConnectionLost as exc:
            raise _Restart(f"upload status unavailable: {exc}") from None
        if status.status not in (200, 204):
            raise _Restart(_describe(status), status)
        location = _location(status) or location
        rng = parse_range(status.headers.get("Range"))
        # "0-0" is what distribution answers for an empty upload too; resend from 0 then
        offset = 0 if rng is None or rng[1] == 0 else rng[1] + 1
        if offset > desc.size:
            raise _Restart(f"the registry holds {offset} bytes of a {desc.size}-byte blob")


# -- blob download ---------------------------------------------------------------------------


class BlobSink:
    """Where a download goes; tracks the offset so a broken transfer resumes with ``Range``.

    ``write`` appends; ``reset`` drops what was written (the server ignored ``Range``).
    """

    def __init__(
        self,
        write: Callable[[bytes], None],
        reset: Callable[[], None],
        offset: int = 0,
    ) -> None:
        self._write = write
        self._reset = reset
        self.offset = offset

    def write(self, data: bytes) -> None:
        self._write(data)
        self.offset += len(data)

    def reset(self) -> None:
        self._reset()
        self.offset = 0


def fetch_blob(
    base: str,
    repo: str,
    desc: Descriptor,
    sink: BlobSink,
    *,
    scopes: tuple[str, ...] = (),
    policy: RetryPolicy = DEFAULT_RETRY,
) -> Flow[None]:
    """GET a blob into ``sink``, resuming with ``Range: bytes=<offset>-`` after a broken read.

    The digest is the caller's to verify (the content store's commit does it).
    """
    what = f"blob {desc.digest}"
    url = _repo_url(base, repo, "blobs", str(desc.digest))
    failures = 0
    while sink.offset < desc.size or desc.size == 0:
        start = sink.offset
        headers = {"Range": f"bytes={start}-"} if start else {}

        def opener(
            status: int, hdrs: Headers, start: int = start
        ) -> Callable[[bytes], None] | None:
            if status == 206:
                cr = hdrs.get("Content-Range", "")
                m = re.match(r"^bytes (\d+)-", cr)
                if m is None or int(m.group(1)) != sink.offset:
                    return None
                return sink.write
            if status == 200:
                if sink.offset:
                    sink.reset()  # the server ignored Range: take it from the top
                return sink.write
            return None

        try:
            resp = yield Request(
                method="GET",
                url=url,
                headers=headers,
                scopes=scopes,
                retry=False,
                stream=opener,
                what=what,
            )
        except ConnectionLost as exc:
            failures += 1
            if failures >= policy.attempts:
                raise Unavailable(
                    f"{what}: giving up after {failures} attempts at byte {sink.offset}: {exc}"
                ) from None
            yield Sleep(policy.delay(failures))
            continue
        if resp.status in (200, 206):
            if desc.size == 0 or sink.offset >= desc.size:
                return None
            failures += 1
        elif resp.status == 416 and start:
            sink.reset()
            failures += 1
        elif resp.status in policy.statuses:
            failures += 1
            if failures >= policy.attempts:
                check(resp, (200,), f"{what}: giving up after {failures} attempts", scopes=scopes)
            yield Sleep(policy.delay(failures, parse_retry_after(resp.headers.get("Retry-After"))))
            continue
        else:
            check(resp, (200, 206), what, scopes=scopes)
        if failures >= policy.attempts:
            raise Unavailable(f"{what}: incomplete after {failures} attempts ({sink.offset} bytes)")
    return None
