"""The wire under :class:`~pallet.remote.client.Session`: one HTTP exchange, nothing more.

Two implementations of the same small interface (:class:`Wire`: ``open(method, url, headers,
content) -> Reply``; a reply has ``status``, ``reason``, ``headers``, ``chunks()``, ``close()``):

``CoreWire`` (the default, direct connections)
    drives ``httpcore`` connection pools, the HTTP/1.1 engine that ``httpx`` itself runs on
    (same maintainers; ``httpx.HTTPTransport`` is a thin adapter over exactly these calls).
    Why not ``httpx.Client`` here: the Session already does everything httpx's client layer
    adds (redirects, auth, retries, URL handling), and importing ``httpx`` costs ~50 ms of
    start-up (it pulls in ``urllib.request``, ``http.client``, ``email`` and ``http.cookiejar``),
    which is a third of the wall time of a push that finds every blob present. Importing
    ``httpcore`` costs ~18 ms. Plain ``http://`` goes through a pool that never does TLS; verified
    TLS through a pool whose SSL context (the CA bundle: tens of ms) is made on its first use;
    ``--insecure`` hosts through an unverified one. ``httpcore`` imports two packages at module
    level that a synchronous client never touches on plain HTTP: ``certifi`` (whose
    ``importlib.resources`` costs ~6 ms) and ``anyio`` (async only); both are put in
    ``sys.modules`` unloaded first, and run on their first attribute access (``certifi.where()``
    when a verified TLS pool is made).

``HttpxWire`` (a transport injected by tests: ``httpx.MockTransport``; or proxies from the
environment, whose ``NO_PROXY``/``ALL_PROXY`` rules httpx implements)
    the full ``httpx.Client``.

Both raise :class:`WireError` for a failed connection, read or write (the Session turns it into
:class:`~pallet.remote.protocol.ConnectionLost`, with the library's exception name and text).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast
from urllib.parse import urlsplit

from .protocol import Headers

if TYPE_CHECKING:
    import ssl

    import httpcore
    import httpx

__all__ = [
    "STREAM_CHUNK",
    "CoreWire",
    "HttpxWire",
    "Reply",
    "Wire",
    "WireError",
    "environment_proxies",
    "verified_context",
]

STREAM_CHUNK = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = ("POST", "PUT", "PATCH")
Body = bytes | Iterator[bytes] | None


class WireError(Exception):
    """A connection failed, or a read or write on it; ``name`` is the library's exception."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}" if text else name)
        self.name = name
        self.text = text


class Reply(Protocol):
    status: int
    reason: str
    headers: Headers

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Wire(Protocol):
    def open(self, method: str, url: str, headers: dict[str, str], content: Body) -> Reply: ...

    def close(self) -> None: ...


def environment_proxies() -> bool:
    """Whether a proxy is configured in the environment (``http_proxy``, ``https_proxy``,
    ``all_proxy``, any case), as ``urllib.request.getproxies`` reads it on POSIX (which httpx
    uses); read here directly because importing ``urllib.request`` costs ~12 ms."""
    for name, value in os.environ.items():
        if value and name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            if name.lower() == "http_proxy" and "REQUEST_METHOD" in os.environ:
                continue  # CGI: HTTP_PROXY may come from a request header (httpoxy)
            return True
    return False


def verified_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifying TLS context: ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` if set, else certifi's
    bundle (as httpx does), plus ``ca_file``."""
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    elif os.environ.get("SSL_CERT_DIR"):
        ctx = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    else:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


class _Deferred(types.ModuleType):
    """A module whose code runs on the first lookup of a name it does not have yet.

    Unlike :class:`importlib.util.LazyLoader` (which loads on *any* attribute access, and
    ``import x`` itself reads ``x.__spec__`` on CPython 3.11), ``__spec__``, ``__path__`` and the
    other import attributes are present from the start, so later ``import x`` statements leave
    it unloaded; ``x.name`` and ``from x import name`` load it. Another thread asking while the
    code runs waits for it; the module's own code sees only what it has defined so far, as in
    a normal import."""

    _lock = threading.RLock()
    _loading: ClassVar[set[int]] = set()

    def __getattr__(self, name: str) -> Any:
        with _Deferred._lock:
            if type(self) is _Deferred:
                if id(self) in _Deferred._loading:  # the module's own code, while it runs
                    raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                _Deferred._loading.add(id(self))
                try:
                    spec.loader.exec_module(self)
                finally:
                    _Deferred._loading.discard(id(self))
                self.__class__ = types.ModuleType  # type: ignore[assignment]
        return getattr(self, name)


def _defer(name: str) -> None:
    """Put module ``name`` in ``sys.modules`` unloaded; nothing if loaded or not installed."""
    if name in sys.modules:
        return
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module


def _before_httpcore() -> None:
    if "httpcore" not in sys.modules:
        _defer("certifi")
        _defer("anyio")


def _unverified_context() -> ssl.SSLContext:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _host_bytes(host: str) -> bytes:
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:  # an internationalised name: the idna codec costs ~1.5 ms to load
        return host.encode("idna")


# -- httpcore ---------------------------------------------------------------------------------
class _CoreReply:
    def __init__(self, resp: httpcore.Response, errors: tuple[type[BaseException], ...]) -> None:
        self._resp = resp
        self._errors = errors
        self.status = resp.status
        reason = resp.extensions.get("reason_phrase", b"")
        self.reason = reason.decode("latin-1") if isinstance(reason, bytes) else ""
        self.headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers)

    def chunks(self) -> Iterator[bytes]:
        try:
            for chunk in cast("Iterator[bytes]", self._resp.stream):
                if chunk:
                    yield chunk
        except self._errors as exc:
            raise WireError(type(exc).__name__, str(exc)) from None

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._resp.close()


class CoreWire:
    """Direct connections through ``httpcore`` pools (see the module docstring)."""

    def __init__(
        self,
        *,
        make_context: Callable[[], ssl.SSLContext],
        insecure: Callable[[str], bool],
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        _before_httpcore()
        import httpcore

        self._httpcore = httpcore
        self._make_context = make_context
        self._insecure = insecure
        self._max = max_connections
        self._timeouts = {
            "connect": connect_timeout,
            "read": read_timeout,
            "write": read_timeout,
            "pool": read_timeout,
        }
        self._errors: tuple[type[BaseException], ...] = (
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.ProxyError,
            httpcore.UnsupportedProtocol,
            httpcore.ConnectionNotAvailable,
        )
        self._lock = threading.Lock()
        self._pools: dict[str, httpcore.ConnectionPool] = {}

    def _pool(self, kind: str) -> httpcore.ConnectionPool:
        with self._lock:
            pool = self._pools.get(kind)
            if pool is None:
                ctx: ssl.SSLContext | None = None
                if kind == "verified":
                    ctx = self._make_context()
                elif kind == "unverified":
                    ctx = _unverified_context()
                pool = self._httpcore.ConnectionPool(
                    ssl_context=ctx,
                    max_connections=self._max,
                    max_keepalive_connections=self._max,
                    keepalive_expiry=5.0,
                )
                self._pools[kind] = pool
            return pool

    def open(self, method: str, url: str, headers: dict[str, str], content: Body) -> Reply:
        hc = self._httpcore
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise WireError("UnsupportedProtocol", f"scheme {scheme!r} in {parts.netloc}")
        try:
            host = _host_bytes(parts.hostname or "").decode("ascii")
            port = parts.port
        except (UnicodeError, ValueError):
            raise WireError("InvalidURL", f"bad host or port in {parts.netloc}") from None
        if port == _DEFAULT_PORTS[scheme]:
            port = None
        host_header = f"[{host}]" if ":" in host else host
        if port is not None:
            host_header += f":{port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind = "plain"
        if scheme == "https":
            netloc = parts.netloc.rsplit("@", 1)[-1]  # as the user named it, port included
            kind = "unverified" if self._insecure(netloc) else "verified"
        raw = [(b"Host", host_header.encode("ascii"))]
        have = {k.lower() for k in headers}
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        body: bytes | Iterator[bytes]
        if content is None:
            body = b""
            if method in _BODY_METHODS and "content-length" not in have:
                raw.append((b"Content-Length", b"0"))
        elif isinstance(content, bytes):
            body = content
            if "content-length" not in have:
                raw.append((b"Content-Length", str(len(content)).encode()))
        else:
            body = content
            if "content-length" not in have and "transfer-encoding" not in have:
                raw.append((b"Transfer-Encoding", b"chunked"))
        try:
            request = hc.Request(
                method.encode("ascii"),
                hc.URL(
                    scheme=scheme.encode("ascii"),
                    host=host.encode("ascii"),
                    port=port,
                    target=target.encode("ascii"),
                ),
                headers=raw,
                content=body,
                extensions={"timeout": self._timeouts},
            )
        except (UnicodeError, TypeError) as exc:
            raise WireError("InvalidURL", str(exc)) from None
        try:
            resp = self._pool(kind).handle_request(request)
        except self._errors as exc:
            raise WireError(type(exc).__name__, str(exc)) from None
        return _CoreReply(resp, self._errors)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for p in pools:
            p.close()


# -- httpx ------------------------------------------------------------------------------------
class _RedactHttpxLog(logging.Filter):
    """httpx logs every request URL at INFO; hide upload state and storage signatures there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2:
            from .errors import redact_url

            args = list(record.args)
            args[1] = redact_url(str(args[1]))
            record.args = tuple(args)
        return True


_httpx_filter_lock = threading.Lock()


def _install_httpx_filter() -> None:
    lg = logging.getLogger("httpx")
    with _httpx_filter_lock:
        if not any(isinstance(f, _RedactHttpxLog) for f in lg.filters):
            lg.addFilter(_RedactHttpxLog())


class _HttpxReply:
    def __init__(self, r: httpx.Response, errors: type[BaseException]) -> None:
        self._r = r
        self._errors = errors
        self.status = r.status_code
        self.reason = r.reason_phrase
        self.headers = Headers(r.headers.multi_items())

    def chunks(self) -> Iterator[bytes]:
        r = self._r
        try:
            if r.is_stream_consumed:  # a response built in memory (MockTransport)
                if r.content:
                    yield r.content
                return
            yield from r.iter_raw(STREAM_CHUNK)
        except self._errors as exc:
            raise WireError(type(exc).__name__, str(exc)) from None

    def close(self) -> None:
        self._r.close()


class HttpxWire:
    """An ``httpx.Client``: for an injected transport, or for proxies from the environment."""

    def __init__(
        self,
        *,
        transport: object | None,
        make_context: Callable[[], ssl.SSLContext],
        insecure_hosts: list[str],
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        import httpx

        self._errors = httpx.HTTPError
        _install_httpx_filter()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        kw: dict[str, Any] = {"timeout": timeout, "follow_redirects": False}
        if transport is not None:
            self._client = httpx.Client(transport=cast(httpx.BaseTransport, transport), **kw)
            return
        mounts: dict[str, httpx.BaseTransport | None] = {
            f"https://{h}": httpx.HTTPTransport(verify=False, limits=limits) for h in insecure_hosts
        }
        self._client = httpx.Client(verify=make_context(), limits=limits, mounts=mounts, **kw)

    def open(self, method: str, url: str, headers: dict[str, str], content: Body) -> Reply:
        try:
            request = self._client.build_request(method, url, headers=headers, content=content)
            r = self._client.send(request, stream=True)
        except self._errors as exc:
            raise WireError(type(exc).__name__, str(exc)) from None
        return _HttpxReply(r, self._errors)

    def close(self) -> None:
        self._client.close()
