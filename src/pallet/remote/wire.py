"""The wire under :class:`~pallet.remote.client.Session`: one HTTP exchange, nothing more.

:class:`Wire` is the seam: ``open(method, url, headers, content) -> Reply``; a reply has
``status``, ``reason``, ``headers``, ``chunks()`` and ``close()``. :class:`CoreWire` implements
it over ``httpcore`` connection pools, the HTTP/1.1 engine that ``httpx`` itself runs on
(``httpx.HTTPTransport`` is a thin adapter over the same calls). The Session already does what
httpx's client layer adds (redirects, auth, retries, URL handling), and httpcore starts faster
(see BENCHMARKS.md). Tests put a fake at the same seam (``Options.wire``).

One pool per kind of connection, each made on first use: plain ``http://``; verified TLS (the
CA bundle takes a while to load, so a plain-HTTP session never loads it); unverified TLS for
``--insecure`` hosts; and the same three through each proxy from the environment
(:class:`Proxies`: ``httpcore.HTTPProxy`` forwards ``http://`` requests and tunnels ``https://``
ones with ``CONNECT``).

A failed connection, read or write raises :class:`WireError` (the Session turns it into
:class:`~pallet.remote.protocol.ConnectionLost`, with httpcore's exception name and text).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import unquote, urlsplit

from ..errors import Unsupported
from .errors import redact_url
from .protocol import Headers

if TYPE_CHECKING:
    import ssl

    import httpcore

__all__ = ["Body", "CoreWire", "Proxies", "Reply", "Wire", "WireError", "verified_context"]

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


def _unverified_context() -> ssl.SSLContext:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _host_bytes(host: str) -> bytes:
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:  # an internationalised name (the idna codec loads only here)
        return host.encode("idna")


# -- proxies from the environment -------------------------------------------------------------
def _env(environ: Mapping[str, str], name: str) -> str:
    if name in environ:  # the lower-case name wins, even set empty (as urllib reads them)
        return environ[name].strip()
    if name == "http_proxy" and "REQUEST_METHOD" in environ:
        return ""  # CGI: HTTP_PROXY may come from a request header (httpoxy)
    return environ.get(name.upper(), "").strip()


def _in_network(host: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Proxies:
    """Proxies as curl, requests and httpx read them from the environment.

    ``http_proxy`` serves ``http://`` URLs, ``https_proxy`` ``https://`` ones, ``all_proxy``
    either when the scheme's own is unset; the lower-case name wins over the upper-case one; a
    proxy without a scheme is ``http://``. ``no_proxy`` is a comma-separated list of hosts that
    go direct: ``*`` (all), a name (itself and its subdomains; a leading ``.`` is ignored), an
    IP address (IPv6 with or without brackets), a CIDR block of addresses, each optionally with
    ``:port``. Names are compared, never resolved.
    """

    http: str = field(default="", repr=False)  # may carry a password
    https: str = field(default="", repr=False)
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies:
        every = _env(environ, "all_proxy")
        no = _env(environ, "no_proxy")
        return cls(
            http=_env(environ, "http_proxy") or every,
            https=_env(environ, "https_proxy") or every,
            no_proxy=tuple(p.strip().lower() for p in no.split(",") if p.strip()),
        )

    def for_url(self, scheme: str, host: str, port: int) -> str:
        """The proxy URL for a request to ``scheme://host:port``, or ``""`` to go direct."""
        proxy = self.https if scheme == "https" else self.http
        if not proxy or self.bypass(host, port):
            return ""
        return proxy if "://" in proxy else f"http://{proxy}"

    def bypass(self, host: str, port: int) -> bool:
        """Whether ``no_proxy`` sends ``host`` (a name or address, no port) direct."""
        h = host.lower().strip("[]").rstrip(".")
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, want = entry, ""
            if name.startswith("["):  # [v6] or [v6]:port
                name, _, rest = name[1:].partition("]")
                want = rest.removeprefix(":")
            elif name.count(":") == 1:  # name:port (a bare IPv6 address has more colons)
                name, want = name.split(":")
            if want and want != str(port):
                continue
            name = name.lstrip(".")
            if "/" in name:
                if _in_network(h, name):
                    return True
            elif name and (h == name or h.endswith("." + name)):
                return True
        return False


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
    """Connections through ``httpcore`` pools, direct or through ``proxies`` (see the module
    docstring)."""

    def __init__(
        self,
        *,
        make_context: Callable[[], ssl.SSLContext],
        insecure: Callable[[str], bool],
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        proxies: Proxies | None = None,
    ) -> None:
        import httpcore

        self._httpcore = httpcore
        self._make_context = make_context
        self._insecure = insecure
        self._proxies = proxies or Proxies()
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
        self._pools: dict[tuple[str, str], httpcore.ConnectionPool] = {}
        self._verified: ssl.SSLContext | None = None

    def _context(self, kind: str) -> ssl.SSLContext | None:
        if kind == "unverified":
            return _unverified_context()
        if kind == "verified":
            if self._verified is None:
                self._verified = self._make_context()
            return self._verified
        return None

    def _pool(self, kind: str, proxy: str = "") -> httpcore.ConnectionPool:
        """The pool for ``kind`` (plain, verified or unverified), through ``proxy`` if set."""
        with self._lock:
            pool = self._pools.get((kind, proxy))
            if pool is None:
                ctx = self._context(kind)
                if proxy:
                    pool = self._proxy_pool(proxy, ctx)
                else:
                    pool = self._httpcore.ConnectionPool(
                        ssl_context=ctx,
                        max_connections=self._max,
                        max_keepalive_connections=self._max,
                        keepalive_expiry=5.0,
                    )
                self._pools[(kind, proxy)] = pool
            return pool

    def _proxy_pool(self, proxy: str, ctx: ssl.SSLContext | None) -> httpcore.HTTPProxy:
        """Raises: Unsupported: not an ``http://`` or ``https://`` proxy URL."""
        try:
            p = urlsplit(proxy)
            ok = p.scheme in _DEFAULT_PORTS and bool(p.hostname) and p.port != 0
        except ValueError:  # a bracket or port that does not parse
            ok = False
        if not ok:
            raise Unsupported(
                f"proxy {redact_url(proxy)} from the environment: "
                "only http:// and https:// proxy URLs are supported"
            )
        auth = (unquote(p.username), unquote(p.password or "")) if p.username else None
        return self._httpcore.HTTPProxy(
            proxy_url=f"{p.scheme}://{p.netloc.rsplit('@', 1)[-1]}",
            proxy_auth=auth,
            ssl_context=ctx,
            proxy_ssl_context=self._context("verified") if p.scheme == "https" else None,
            max_connections=self._max,
            max_keepalive_connections=self._max,
            keepalive_expiry=5.0,
        )

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
        proxy = self._proxies.for_url(scheme, host, port or _DEFAULT_PORTS[scheme])
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
            resp = self._pool(kind, proxy).handle_request(request)
        except self._errors as exc:
            raise WireError(type(exc).__name__, str(exc)) from None
        return _CoreReply(resp, self._errors)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for p in pools:
            p.close()
