"""The driver: runs sans-IO flows over one shared connection pool (:mod:`.wire`).

:class:`Session` is the only code that sends HTTP. For each request it

1. finds the registry's endpoint once (``GET /v2/``: the scheme, and the auth challenge);
2. adds ``Authorization`` only for the registry's own origin: a Basic header, or a Bearer token
   fetched for the request's scopes and reused until it expires; a 401 refreshes the token once
   (with the scopes the challenge names) and resends;
3. follows redirects itself, dropping ``Authorization`` when the origin changes (blob GETs are
   redirected to storage; the distribution spec forbids forwarding credentials there);
4. resends requests marked ``retry`` after connection errors, 408, 429 and 5xx, with exponential
   backoff and jitter, or after ``Retry-After``;
5. streams bodies both ways in 1 MiB pieces; nothing holds a blob in memory.

Requests that are not marked ``retry`` get their connection failures thrown into the flow as
:class:`~pallet.remote.protocol.ConnectionLost`, so the flow can resume an upload or download.

Nothing here logs or raises a header value, a token or a password; URLs pass through
:func:`~pallet.remote.errors.redact_url`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import urljoin, urlsplit

from ..errors import Unavailable
from .auth import (
    Challenge,
    Credentials,
    Token,
    TokenCache,
    basic_header,
    merge_scopes,
    parse_challenges,
    parse_token_response,
    token_request,
)
from .credentials import Keychain, normalize_host
from .errors import Unauthorized, redact_url
from .options import Options
from .protocol import (
    BodyRange,
    ConnectionLost,
    Flow,
    Headers,
    Request,
    Response,
    Sleep,
    parse_retry_after,
)
from .wire import CoreWire, Proxies, Reply, Wire, WireError, verified_context

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

__all__ = ["Session", "is_loopback"]

log = logging.getLogger("pallet.remote")
T = TypeVar("T")

MAX_BODY = (4 << 20) + 1
_REDIRECTS = (301, 302, 303, 307, 308)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    h = host
    if h.startswith("["):
        h = h[1 : h.find("]")]
    elif h.count(":") == 1:
        h = h.rsplit(":", 1)[0]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str]:
    p = urlsplit(url)
    netloc = p.netloc.rsplit("@", 1)[-1].lower()
    default = {"http": ":80", "https": ":443"}.get(p.scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return p.scheme, netloc


@dataclass(slots=True)
class _Host:
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""
    challenge: Challenge | None = None
    token_locks: dict[tuple[str, ...], threading.Lock] = field(default_factory=dict)


class Session:
    """One shared connection pool, auth state and credential cache for many registries.

    Use as a context manager (or call :meth:`close`). Thread-safe: the pusher and puller run
    flows from several threads at once.
    """

    def __init__(self, options: Options | None = None, keychain: Keychain | None = None) -> None:
        self.options = (options or Options()).validated()
        self.keychain = keychain or Keychain(self.options.credentials)
        self._tokens = TokenCache()
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._insecure = {normalize_host(h) for h in self.options.insecure}
        o = self.options
        self._own_wire = o.wire is None
        self._wire: Wire
        if o.wire is not None:
            self._wire = o.wire
        else:
            self._wire = CoreWire(
                make_context=self._ssl_context,
                insecure=self._is_insecure,
                max_connections=o.jobs * 2 + 4,
                connect_timeout=o.connect_timeout,
                read_timeout=o.read_timeout,
                proxies=Proxies.from_environ(os.environ),
            )

    def _is_insecure(self, netloc: str) -> bool:
        n = netloc.lower()
        return n in self._insecure or (
            not n.endswith("]") and n.rsplit(":", 1)[0] in self._insecure
        )

    def _ssl_context(self) -> ssl.SSLContext:
        """The verifying context (system CAs, plus ``ca_file``): loading the CA bundle is slow,
        so it is made on the first HTTPS request (or request through an HTTPS proxy)."""
        return verified_context(self.options.ca_file)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        if self._own_wire:
            self._wire.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hosts ----------------------------------------------------------------------------
    def _host(self, name: str) -> _Host:
        with self._lock:
            h = self._hosts.get(name)
            if h is None:
                h = self._hosts[name] = _Host(name=name)
            return h

    def _schemes(self, name: str) -> list[str]:
        # loopback first: a local registry speaks plain HTTP as a rule (containerd uses HTTP
        # for it), so an insecure loopback host starts there too instead of paying a failed
        # TLS handshake on every run; an HTTPS one answers 400 and is tried next
        if is_loopback(name):
            return ["http", "https"]
        if normalize_host(name) in self._insecure:
            return ["https", "http"]
        return ["https"]

    def endpoint(self, name: str) -> str:
        """``scheme://host`` serving ``/v2/`` for registry API host ``name`` (pinged once).

        Raises:
            Unavailable: no scheme answered.
        """
        host = self._host(name)
        with host.lock:
            if host.base:
                return host.base
            errors: list[str] = []
            schemes = self._schemes(name)
            for i, scheme in enumerate(schemes):
                base = f"{scheme}://{name}"
                req = Request(method="GET", url=f"{base}/v2/", retry=True, what=f"registry {name}")
                last = i == len(schemes) - 1
                try:
                    resp = self._send_with_retries(req, None, attempts=None if last else 1)
                except ConnectionLost as exc:
                    errors.append(f"{scheme}: {exc}")
                    continue
                if resp.status == 400 and b"HTTP request to an HTTPS server" in resp.body:
                    errors.append(f"{scheme}: the server speaks TLS")
                    continue
                host.base = base
                if resp.status == 401:
                    found = parse_challenges(resp.headers.get_all("WWW-Authenticate"))
                    host.challenge = _pick(found)
                scheme_name = host.challenge.scheme if host.challenge else "none"
                log.debug("registry %s: %s, auth %s", name, base, scheme_name)
                return base
            raise Unavailable(f"registry {name}: not reachable ({'; '.join(errors)})")

    # -- running flows --------------------------------------------------------------------
    def run(self, flow: Flow[T], registry: str) -> T:
        """Drive ``flow`` to its return value; ``registry`` is the API host its requests target.

        Raises:
            whatever the flow raises (RegistryError, DigestMismatch, ConnectionLost, ...).
        """
        host = self._host(registry)
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    if step.seconds > 0:
                        self.options.sleep(step.seconds)
                    step = flow.send(Response(method="", url="", status=0))
                    continue
                try:
                    resp = self.send(step, host)
                except ConnectionLost as exc:
                    step = flow.throw(exc)
                    continue
                step = flow.send(resp)
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            flow.close()

    def send(self, req: Request, host: _Host) -> Response:
        """Send one request with auth, redirects and (for ``retry`` requests) retries."""
        if not host.base:
            self.endpoint(host.name)
        return self._send_with_retries(req, host)

    def _send_with_retries(
        self, req: Request, host: _Host | None, attempts: int | None = None
    ) -> Response:
        policy = self.options.retry
        limit = attempts if attempts is not None else policy.attempts
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            auth = self._authorization(host, req.scopes) if host is not None else None
            try:
                resp = self._exchange(req, host, auth)
            except ConnectionLost as exc:
                if req.retry and attempt < limit:
                    delay = policy.delay(attempt)
                    log.debug("%s; retrying in %.1fs", exc, delay)
                    self.options.sleep(delay)
                    continue
                raise
            if (
                resp.status == 401
                and host is not None
                and not refreshed
                and _origin(resp.url) == _origin(host.base or req.url)
            ):
                challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate"))
                ch = _pick(challenges)
                if ch is not None and ch.scheme == "bearer":
                    refreshed = True
                    self._refresh(host, ch, req.scopes)
                    attempt -= 1
                    continue
                if ch is not None and host.challenge is None:
                    host.challenge = ch  # registry wants auth only for some paths
                    refreshed = True
                    attempt -= 1
                    continue
            if req.retry and policy.retryable(resp) and attempt < limit:
                ra = parse_retry_after(resp.headers.get("Retry-After"))
                if ra is not None and ra > policy.max_retry_after:
                    return resp
                delay = policy.delay(attempt, ra)
                log.info(
                    "%s: %s %s: %d; retrying in %.1fs",
                    req.what or "request",
                    req.method,
                    redact_url(resp.url),
                    resp.status,
                    delay,
                )
                self.options.sleep(delay)
                continue
            return resp

    # -- auth -----------------------------------------------------------------------------
    def _credentials(self, host: _Host) -> Credentials | None:
        name = "docker.io" if host.name == "registry-1.docker.io" else host.name
        return self.keychain.get(name)

    def _authorization(self, host: _Host, scopes: tuple[str, ...]) -> str | None:
        ch = host.challenge
        if ch is None:
            return None
        creds = self._credentials(host)
        if ch.scheme == "basic":
            return basic_header(creds) if creds and (creds.username or creds.password) else None
        if ch.scheme != "bearer":
            return None
        tok = self._tokens.get(ch, scopes)
        if tok is not None:
            return f"Bearer {tok.token}"
        with self._lock:
            lock = host.token_locks.setdefault(tuple(sorted(scopes)), threading.Lock())
        with lock:  # single flight per scope set
            tok = self._tokens.get(ch, scopes)
            if tok is None:
                tok = self._fetch_token(ch, scopes, creds)
                self._tokens.put(ch, scopes, tok)
        return f"Bearer {tok.token}"

    def _refresh(self, host: _Host, ch: Challenge, scopes: tuple[str, ...]) -> None:
        """A 401 despite a token: the token expired or lacks a scope the challenge names."""
        if host.challenge is None or host.challenge.realm != ch.realm:
            params = {k: v for k, v in ch.params.items() if k != "scope"}
            host.challenge = Challenge(scheme=ch.scheme, params=params)
        base = host.challenge
        self._tokens.drop(base, scopes)
        wanted = merge_scopes(scopes, ch.scopes)
        try:
            tok = self._fetch_token(base, wanted, self._credentials(host))
        except Unauthorized as exc:
            log.debug("token refresh refused: %s", exc)
            return
        self._tokens.put(base, scopes, tok)

    def _fetch_token(
        self, ch: Challenge, scopes: tuple[str, ...], creds: Credentials | None
    ) -> Token:
        req = token_request(ch, scopes, creds)
        resp = self._send_with_retries(req, None)
        if resp.status in (404, 405) and req.method == "POST" and creds and creds.identity_token:
            # realms without the OAuth2 POST: fall back to GET (anonymous)
            resp = self._send_with_retries(token_request(ch, scopes, None), None)
        tok = parse_token_response(resp)
        log.debug(
            "token for %s (%s): valid %.0fs",
            urlsplit(ch.realm).netloc,
            " ".join(scopes),
            tok.expires_at - time.time(),
        )
        return tok

    def fetch_token(
        self, ch: Challenge, scopes: tuple[str, ...], creds: Credentials | None, *, offline: bool
    ) -> Response:
        """Raw token request (``login`` uses it to verify credentials)."""
        return self._send_with_retries(token_request(ch, scopes, creds, offline=offline), None)

    def challenge(self, name: str) -> Challenge | None:
        self.endpoint(name)
        return self._host(name).challenge

    def get_with_basic(self, name: str, creds: Credentials) -> Response:
        """``GET /v2/`` with Basic credentials (``login`` against a Basic registry)."""
        base = self.endpoint(name)
        req = Request(method="GET", url=f"{base}/v2/", retry=True, what=f"registry {name}")
        return self._exchange(req, None, basic_header(creds), auth_origin=_origin(base))

    # -- one exchange (with redirects) -----------------------------------------------------
    def _exchange(
        self,
        req: Request,
        host: _Host | None,
        auth: str | None,
        *,
        auth_origin: tuple[str, str] | None = None,
    ) -> Response:
        base_headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
        explicit = [v for k, v in req.headers.items() if k.lower() == "authorization"]
        auth = auth or (explicit[0] if explicit else None)
        if auth_origin is None:
            auth_origin = _origin(host.base if host is not None and host.base else req.url)
        url = req.url
        method = req.method
        body = req.body
        for _hop in range(10):
            headers = {"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"}
            headers.update(base_headers)
            # credentials go to the origin they are for, never along a redirect elsewhere
            if auth and _origin(url) == auth_origin:
                headers["Authorization"] = auth
            gen: Iterator[bytes] | None = None
            content: bytes | Iterator[bytes] | None = None
            if isinstance(body, BodyRange):
                gen = body.chunks()
                content = gen
                headers["Content-Length"] = str(body.length)
            elif body is not None:
                content = body
            try:
                try:
                    r = self._wire.open(method, url, headers, content)
                except WireError as exc:
                    raise _lost(req, url, exc) from None
            finally:
                if gen is not None and hasattr(gen, "close"):
                    gen.close()
            try:
                location = r.headers.get("location")
                if r.status in _REDIRECTS and location is not None:
                    new = urljoin(url, location)
                    if method in ("GET", "HEAD") or r.status in (307, 308):
                        log.debug("%s %s -> %d redirect", method, redact_url(url), r.status)
                        url = new
                        if r.status == 303:
                            method, body = "GET", None
                        continue
                return self._finish(req, method, url, r)
            finally:
                r.close()
        what = req.what or "request"
        raise Unavailable(f"{what}: {method} {redact_url(req.url)}: too many redirects")

    def _finish(self, req: Request, method: str, url: str, r: Reply) -> Response:
        headers = r.headers
        self._warnings(headers)
        data = b""
        try:
            writer: Callable[[bytes], None] | None = None
            if req.stream is not None:
                writer = req.stream(r.status, headers)
            if writer is not None:
                for chunk in r.chunks():
                    writer(chunk)
            elif method != "HEAD":
                parts: list[bytes] = []
                size = 0
                for chunk in r.chunks():
                    parts.append(chunk)
                    size += len(chunk)
                    if size >= MAX_BODY:
                        break
                data = b"".join(parts)
        except WireError as exc:
            raise _lost(req, url, exc) from None
        log.debug("%s %s -> %d", method, redact_url(url), r.status)
        return Response(
            method=method,
            url=url,
            status=r.status,
            headers=headers,
            body=data,
            reason=r.reason,
        )

    def _warnings(self, headers: Headers) -> None:
        for w in headers.get_all("Warning"):
            if w.startswith("299") and w not in self._warned:
                self._warned.add(w)
                log.warning("registry warning: %s", w[:300])


def _lost(req: Request, url: str, exc: WireError) -> ConnectionLost:
    text = exc.text.splitlines()[0][:200] if exc.text else ""
    return ConnectionLost(
        f"{req.what or 'request'}: {req.method} {redact_url(url)}: "
        f"{exc.name}{': ' + text if text else ''}"
    )


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == scheme:
                return ch
    return None
