"""The Session over a :class:`FakeWire` (auth, retries, redirects, push ordering), and the
httpcore wire against loopback servers (framing, errors, TLS contexts, proxies)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, urlsplit

import pytest

from pallet.content.local import LocalStore
from pallet.errors import AlreadyExists, InvalidArgument, Unsupported
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import Digest
from pallet.progress import Progress
from pallet.remote import Credentials, Options, PushOutcome, RetryPolicy, push, push_by_digest
from pallet.remote.client import Session, is_loopback
from pallet.remote.protocol import ConnectionLost, Request, Response
from pallet.remote.wire import CoreWire, Proxies, WireError
from support.fakewire import FakeWire, Handler, respond


def u(req: Request) -> SplitResult:
    return urlsplit(req.url)


def body(req: Request) -> bytes:
    assert req.body is None or isinstance(req.body, bytes)
    return req.body or b""


def session(handler: Handler, sleeps: list[float] | None = None, **kw: object) -> Session:
    rec = sleeps if sleeps is not None else []
    opts: dict[str, object] = {
        "wire": FakeWire(handler),
        "sleep": rec.append,
        "retry": RetryPolicy(attempts=4, initial=0.5, jitter=0),
    }
    opts.update(kw)
    return Session(Options(**opts))  # type: ignore[arg-type]


def token_handler(
    log: list[str], *, expires_in: int = 300, realm: str = "https://auth.example/token"
) -> Handler:
    n = {"tokens": 0}

    def handle(req: Request) -> Response:
        log.append(
            f"{req.method} {u(req).hostname}{u(req).path} "
            f"{req.headers.get('Authorization', '-')[:12]}"
        )
        if u(req).hostname == "auth.example":
            n["tokens"] += 1
            return respond(200, json={"token": f"tok{n['tokens']}", "expires_in": expires_in})
        auth = req.headers.get("Authorization", "")
        if not auth.startswith("Bearer tok"):
            return respond(
                401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="{realm}",service="reg",'
                    'scope="repository:app:pull"'
                },
            )
        return respond(200, headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    return handle


def head(s: Session, path: str = "/v2/app/blobs/sha256:x") -> int:
    base = s.endpoint("reg.example")
    req = Request(method="HEAD", url=base + path, scopes=("repository:app:pull",), retry=True)
    return s.send(req, s._host("reg.example")).status


def test_401_then_token_then_reuse() -> None:
    log: list[str] = []
    with session(token_handler(log)) as s:
        assert head(s) == 200
        assert head(s) == 200
    assert log == [
        "GET reg.example/v2/ -",
        "GET auth.example/token -",
        "HEAD reg.example/v2/app/blobs/sha256:x Bearer tok1",
        "HEAD reg.example/v2/app/blobs/sha256:x Bearer tok1",
    ]


def test_expired_token_is_fetched_again() -> None:
    log: list[str] = []
    with session(token_handler(log, expires_in=1)) as s:
        head(s)
        head(s)
    assert sum("auth.example" in x for x in log) == 2


def test_401_with_a_token_refreshes_once() -> None:
    log: list[str] = []
    inner = token_handler(log)
    state = {"rejected": False}

    def handler(req: Request) -> Response:
        if u(req).path.endswith("sha256:x") and not state["rejected"]:
            state["rejected"] = True
            log.append("reject")
            return respond(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg",'
                    'scope="repository:app:pull,push",error="invalid_token"'
                },
            )
        return inner(req)

    with session(handler) as s:
        assert head(s) == 200
    assert log[-3:] == [
        "reject",
        "GET auth.example/token -",
        "HEAD reg.example/v2/app/blobs/sha256:x Bearer tok2",
    ]


def test_429_retry_after_then_success_and_exhaustion() -> None:
    sleeps: list[float] = []
    calls = {"n": 0}

    def handler(req: Request) -> Response:
        if u(req).path == "/v2/":
            return respond(200)
        calls["n"] += 1
        if calls["n"] == 1:
            return respond(429, headers={"Retry-After": "2"})
        if calls["n"] == 2:
            return respond(503)
        return respond(200)

    with session(handler, sleeps) as s:
        assert head(s) == 200
    assert sleeps == [2.0, 1.0]  # Retry-After, then backoff for attempt 2
    always: Handler = lambda req: respond(200 if u(req).path == "/v2/" else 502)  # noqa: E731
    sleeps.clear()
    with session(always, sleeps) as s:
        assert head(s) == 502
    assert len(sleeps) == 3


def test_connection_errors_are_retried_for_idempotent_requests() -> None:
    n = {"fails": 2}

    def handler(req: Request) -> Response:
        if u(req).path != "/v2/" and n["fails"]:
            n["fails"] -= 1
            raise WireError("ReadError", "connection reset by peer")
        return respond(200)

    with session(handler) as s:
        assert head(s) == 200


def test_redirect_to_another_host_drops_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(req: Request) -> Response:
        seen.append((str(u(req).hostname), req.headers.get("Authorization")))
        if u(req).path == "/v2/" and "Authorization" not in req.headers:
            return respond(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if u(req).hostname == "reg.example" and u(req).path.startswith("/v2/app/blobs"):
            return respond(307, headers={"Location": "https://storage.example/blob?sig=s3cr3t"})
        if u(req).hostname == "reg.example" and u(req).path == "/same":
            return respond(302, headers={"Location": "/v2/app/manifests/x"})
        return respond(200, body=b"data")

    creds = {"reg.example": Credentials(username="u", password="p")}
    with session(handler, credentials=creds) as s:
        assert head(s) == 200
        assert head(s, "/same") == 200
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    assert seen[1:] == [
        ("reg.example", basic),
        ("storage.example", None),
        ("reg.example", basic),
        ("reg.example", basic),
    ]


def test_loopback_uses_http_and_falls_back_to_https() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.2") and is_loopback("[::1]:5000")
    assert not is_loopback("example.com:5000") and not is_loopback("10.0.0.1")
    for host in ("127.0.0.255:1", "0:0:0:0:0:0:0:1", "[::1]", "a.localhost"):
        assert is_loopback(host), host
    for host in ("127.1", "127.000.0.1", "128.0.0.1", "256.0.0.1", "[fe80::1]", "registry:5000"):
        assert not is_loopback(host), host
    schemes: list[str] = []

    def handler(req: Request) -> Response:
        schemes.append(u(req).scheme)
        if u(req).scheme == "http":
            return respond(400, body=b"Client sent an HTTP request to an HTTPS server.\n")
        return respond(200)

    with session(handler) as s:
        assert s.endpoint("127.0.0.1:5000") == "https://127.0.0.1:5000"
        assert s.endpoint("127.0.0.1:5000") == "https://127.0.0.1:5000"
        schemes.clear()
        assert s.endpoint("registry.example") == "https://registry.example"
    assert schemes == ["https"]
    with session(lambda req: respond(200)) as s:
        assert s.endpoint("localhost:5000") == "http://localhost:5000"


def test_insecure_host_tries_https_then_http() -> None:
    schemes: list[str] = []

    def handler(req: Request) -> Response:
        schemes.append(u(req).scheme)
        if u(req).scheme == "https":
            raise WireError("ConnectError", "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        return respond(200)

    with session(handler, insecure=frozenset({"reg.example:5000"})) as s:
        assert s.endpoint("reg.example:5000") == "http://reg.example:5000"
    assert schemes == ["https", "http"]


def test_insecure_loopback_host_tries_http_first() -> None:
    """No TLS handshake to fail on every run against a local plain-HTTP registry; an HTTPS one
    still answers (its 400 sends the client on to https)."""
    schemes: list[str] = []

    def plain(req: Request) -> Response:
        schemes.append(u(req).scheme)
        return respond(200)

    with session(plain, insecure=frozenset({"127.0.0.1:5000"})) as s:
        assert s.endpoint("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert schemes == ["http"]
    schemes.clear()

    def tls(req: Request) -> Response:
        schemes.append(u(req).scheme)
        if u(req).scheme == "http":
            return respond(400, body=b"Client sent an HTTP request to an HTTPS server.\n")
        return respond(200)

    with session(tls, insecure=frozenset({"127.0.0.1:5000"})) as s:
        assert s.endpoint("127.0.0.1:5000") == "https://127.0.0.1:5000"
    assert schemes == ["http", "https"]


def test_identity_token_posts_a_refresh_grant() -> None:
    bodies: list[bytes] = []

    def handler(req: Request) -> Response:
        if u(req).hostname == "auth.example":
            bodies.append(body(req))
            assert req.method == "POST"
            return respond(200, json={"access_token": "at", "expires_in": 300})
        if req.headers.get("Authorization") != "Bearer at":
            return respond(
                401,
                headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/t",service="reg"'},
            )
        return respond(200)

    creds = {"reg.example": Credentials(identity_token="refresh-me")}
    with session(handler, credentials=creds) as s:
        assert head(s) == 200
    assert b"grant_type=refresh_token" in bodies[0] and b"refresh_token=refresh-me" in bodies[0]


# -- a whole push against an in-memory registry ------------------------------------------------


class MemRegistry:
    """Just enough of the distribution API for push: records the order of completed objects."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.events: list[str] = []
        self.n = 0

    def __call__(self, req: Request) -> Response:
        p = u(req).path
        if p == "/v2/":
            return respond(200)
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:\w+)", p):
            return respond(200 if m.group(2) in self.blobs else 404)
        if re.fullmatch(r"/v2/(.+)/blobs/uploads/", p):
            self.n += 1
            self.uploads[str(self.n)] = bytearray()
            return respond(202, headers={"Location": f"/upload/{self.n}"})
        if m := re.fullmatch(r"/upload/(\d+)", p):
            buf = self.uploads[m.group(1)]
            buf.extend(body(req))
            if req.method == "PATCH":
                return respond(202, headers={"Location": p, "Range": f"0-{len(buf) - 1}"})
            d = parse_qs(u(req).query)["digest"][0]
            assert "sha256:" + hashlib.sha256(buf).hexdigest() == d
            self.blobs[d] = bytes(buf)
            self.events.append(f"blob {d[:15]}")
            return respond(201, headers={"Docker-Content-Digest": d})
        if m := re.fullmatch(r"/v2/(.+)/manifests/(.+)", p):
            ref = m.group(2)
            if req.method == "HEAD":
                if ref in self.manifests:
                    ctype, stored = self.manifests[ref]
                    d = "sha256:" + hashlib.sha256(stored).hexdigest()
                    headers = {
                        "Docker-Content-Digest": d,
                        "Content-Type": ctype,
                        "Content-Length": str(len(stored)),
                    }
                    return respond(200, headers=headers)
                return respond(404)
            data = body(req)
            ctype = req.headers["Content-Type"]
            assert json.loads(data)["mediaType"] == ctype
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            self.manifests[ref] = (ctype, data)
            self.events.append(f"manifest {ref[:15]}")
            return respond(201, headers={"Docker-Content-Digest": d})
        raise AssertionError(f"{req.method} {p}")


def _put(store: LocalStore, data: bytes, media_type: str) -> Descriptor:
    d = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    with store.writer(f"t-{d}") as w:
        w.write(data)
        with contextlib.suppress(AlreadyExists):
            w.commit(len(data), d)
    return Descriptor(media_type=media_type, digest=d, size=len(data))


def _image(store: LocalStore, seed: int, shared: bytes) -> Descriptor:
    layer = _put(store, bytes([seed]) * (300 << 10), mt.OCI_LAYER)
    common = _put(store, shared, mt.OCI_LAYER)
    cfg = _put(store, json.dumps({"seed": seed}).encode(), mt.OCI_CONFIG)
    m = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_json(),
         "layers": [layer.to_json(), common.to_json()]}  # fmt: skip
    return _put(store, json.dumps(m).encode(), mt.OCI_MANIFEST)


def test_push_order_dedupe_and_tag_only_on_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c")
    shared = b"s" * 5000
    a, b = _image(store, 1, shared), _image(store, 2, shared)
    idx = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {**a.to_json(), "platform": Platform.parse("linux/amd64").to_json()},
            {**b.to_json(), "platform": Platform.parse("linux/arm64").to_json()},
        ],
    }
    root = _put(store, json.dumps(idx).encode(), mt.OCI_INDEX)
    reg = MemRegistry()
    opts = Options(wire=FakeWire(reg), chunk_size=128 << 10, monolithic_max=64 << 10)
    res = push(store, root, "reg.example/app:v1", options=opts)
    assert len(res[0].blobs) == 5  # 2 configs + 2 layers + 1 shared, each once
    assert set(res[0].blobs.values()) == {PushOutcome.UPLOADED}
    kinds = [e.split()[0] for e in reg.events]
    assert kinds == ["blob"] * 5 + ["manifest"] * 3  # blobs first, manifests after
    assert reg.events[-1] == "manifest v1"  # the index, last, by tag
    assert set(reg.manifests) == {"v1", str(a.digest), str(b.digest)}
    assert reg.manifests["v1"][0] == mt.OCI_INDEX
    with pytest.raises(InvalidArgument, match="can't push tagged ref reg.example/app:v1 by digest"):
        push_by_digest(store, root, "reg.example/app:v1", options=opts)
    res = push_by_digest(store, root, ["reg.example/app"], options=opts)
    assert set(res[0].blobs.values()) == {PushOutcome.EXISTS}
    assert set(reg.manifests) == {"v1", str(a.digest), str(b.digest), str(root.digest)}


def test_push_of_what_the_tag_already_names_is_one_head(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c")
    root = _image(store, 3, b"s" * 5000)
    reg = MemRegistry()
    seen: list[str] = []

    def logged(req: Request) -> Response:
        seen.append(f"{req.method} {u(req).path}")
        return reg(req)

    opts = Options(wire=FakeWire(logged))
    first = push(store, root, "reg.example/app:v1", options=opts)
    assert set(first[0].blobs.values()) == {PushOutcome.UPLOADED}
    assert first[0].manifests == {root.digest: PushOutcome.UPLOADED}
    seen.clear()
    events: list[Progress] = []
    again = push(store, root, "reg.example/app:v1", options=opts, on_progress=events.append)
    # the tag already names this manifest: one HEAD, no blob checks, nothing sent
    assert seen == ["GET /v2/", "HEAD /v2/app/manifests/v1"]
    assert set(again[0].blobs) == set(first[0].blobs)
    assert set(again[0].blobs.values()) == {PushOutcome.EXISTS}
    assert again[0].manifests == {root.digest: PushOutcome.EXISTS}
    assert again[0].bytes_sent == 0
    names = sorted(e.name for e in events if e.completed and e.name.startswith("exists"))
    assert names == sorted(
        [f"exists {d}" for d in first[0].blobs] + ["exists manifest reg.example/app:v1"]
    )
    # the same image under a tag that names something else: the full push (blobs HEADed)
    other = _image(store, 4, b"s" * 5000)
    push(store, other, "reg.example/app:v2", options=opts)
    seen.clear()
    res = push(store, root, "reg.example/app:v2", options=opts)
    assert sum(x.startswith("HEAD /v2/app/blobs/") for x in seen) == 3
    assert res[0].manifests == {root.digest: PushOutcome.UPLOADED}
    assert reg.manifests["v2"][1] == reg.manifests["v1"][1]


# -- the SSL context is made only for HTTPS ----------------------------------------------------
_PROXY_VARS = tuple(
    f"{name}_proxy".upper() if upper else f"{name}_proxy"
    for name in ("http", "https", "all", "no")
    for upper in (False, True)
)


def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded loopback HTTP server with ``handler``: ``host:port``."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


@pytest.fixture
def plain_registry() -> Iterator[str]:
    """A loopback server answering ``200`` to every GET over plain HTTP: ``host:port``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as host:
        yield host


def _count_contexts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    real = Session._ssl_context

    def counting(self: Session) -> ssl.SSLContext:
        made.append(1)
        return real(self)

    monkeypatch.setattr(Session, "_ssl_context", counting)
    return made


def test_plain_http_never_loads_the_ca_bundle(
    plain_registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxies(monkeypatch)
    made = _count_contexts(monkeypatch)
    with Session(Options(retry=RetryPolicy(attempts=1))) as s:
        assert s.endpoint(plain_registry) == f"http://{plain_registry}"
        host = s._host(plain_registry)
        assert (
            s.send(Request(method="GET", url=f"http://{plain_registry}/v2/x"), host).status == 200
        )
        assert made == []
        # HTTPS (here to a server that does not speak it) makes the context, once
        tls_url = f"https://{plain_registry}/v2/"
        for _ in range(2):
            with pytest.raises(ConnectionLost):
                s._send_with_retries(Request(method="GET", url=tls_url), None)
        assert made == [1]


def test_https_is_verified_with_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxies(monkeypatch)
    made = _count_contexts(monkeypatch)
    with Session(Options(insecure=["insecure.example:5000"])) as s:
        wire = s._wire
        assert isinstance(wire, CoreWire)
        assert made == []
        tls = wire._pool("verified")
        assert made == [1]
        ctx = tls._ssl_context
        assert ctx is not None
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert wire._pool("verified") is tls
        assert made == [1]
        # an --insecure host gets the unverified pool, every other host the verified one
        assert s._is_insecure("insecure.example:5000") and s._is_insecure("INSECURE.example:5000")
        assert not s._is_insecure("insecure.example:5001")
        assert not s._is_insecure("registry.example")
        raw = wire._pool("unverified")._ssl_context
        assert raw is not None and raw.verify_mode == ssl.CERT_NONE and not raw.check_hostname
        assert made == [1]


# -- the httpcore wire: the bytes it puts on the connection ------------------------------------
@pytest.fixture
def echo_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A loopback HTTP/1.1 server that records (request line, headers, body) and answers
    ``201 Made`` with a 3-byte body and a ``Location``."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = b""
            if "content-length" in headers:
                body = self.rfile.read(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    chunk = self.rfile.read(size + 2)[:size]
                    if size == 0:
                        break
                    body += chunk
            seen.append((self.requestline, headers, body))
            self.send_response(201, "Made")
            self.send_header("Location", "/next?_state=abc")
            self.send_header("Content-Length", "3")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"abc")

        do_GET = do_POST = do_PUT = do_PATCH = do_HEAD = _any

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as host:
        yield host, seen


def _wire() -> CoreWire:
    return CoreWire(
        make_context=lambda: ssl.create_default_context(),
        insecure=lambda netloc: False,
        max_connections=2,
        connect_timeout=5,
        read_timeout=5,
    )


def test_core_wire_frames_requests_like_httpx(
    echo_server: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    host, seen = echo_server
    w = _wire()
    try:
        r = w.open("POST", f"http://{host}/v2/r/blobs/uploads/?mount=x&from=y", {"X-A": "1"}, None)
        assert (r.status, r.reason, b"".join(r.chunks())) == (201, "Made", b"abc")
        assert ("Location", "/next?_state=abc") in r.headers.items_raw()
        r.close()
        r = w.open("PUT", f"http://{host}/p", {}, b"hello")
        assert b"".join(r.chunks()) == b"abc"
        r.close()
        r = w.open("PATCH", f"http://{host}/q", {}, iter([b"ab", b"", b"cd"]))
        r.close()
        r = w.open("PATCH", f"http://{host}/s", {"Content-Length": "4"}, iter([b"wx", b"yz"]))
        r.close()
        r = w.open("HEAD", f"http://{host}/h", {}, None)
        assert r.status == 201 and list(r.chunks()) == []
        r.close()
    finally:
        w.close()
    lines = [s[0] for s in seen]
    assert lines == [
        "POST /v2/r/blobs/uploads/?mount=x&from=y HTTP/1.1",
        "PUT /p HTTP/1.1",
        "PATCH /q HTTP/1.1",
        "PATCH /s HTTP/1.1",
        "HEAD /h HTTP/1.1",
    ]
    (post, put, chunked, sized, head) = seen
    assert post[1]["host"] == host and post[1]["x-a"] == "1"
    assert post[1]["content-length"] == "0" and post[2] == b""  # a bodiless POST says so
    assert put[1]["content-length"] == "5" and put[2] == b"hello"
    assert chunked[1]["transfer-encoding"] == "chunked" and chunked[2] == b"abcd"
    assert sized[1]["content-length"] == "4" and sized[2] == b"wxyz"
    assert "transfer-encoding" not in sized[1]
    assert "content-length" not in head[1]


def test_core_wire_errors_are_named_as_httpx_names_them() -> None:
    w = _wire()
    try:
        # nothing listens on port 9 of loopback: a connection error, named as httpx names it
        with pytest.raises(WireError) as ei:
            w.open("GET", "http://127.0.0.1:9/v2/", {}, None)
        assert ei.value.name == "ConnectError"
        with pytest.raises(WireError) as ei:
            w.open("GET", "ftp://127.0.0.1/v2/", {}, None)
        assert ei.value.name == "UnsupportedProtocol"
    finally:
        w.close()


# -- proxies from the environment ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("", "registry.example", 443, False),
        ("*", "registry.example", 443, True),
        ("localhost, *", "registry.example", 443, True),
        ("registry.example", "registry.example", 443, True),
        ("registry.example", "eu.registry.example", 443, True),  # and its subdomains
        ("registry.example", "myregistry.example", 443, False),  # a name, not a string suffix
        ("example", "registry.example", 443, True),
        (".registry.example", "registry.example", 443, True),  # a leading dot is ignored
        (".registry.example", "eu.registry.example", 443, True),
        ("REGISTRY.example", "Registry.EXAMPLE", 443, True),
        ("registry.example", "registry.example.", 443, True),  # the root's dot
        ("other.example , registry.example,", "registry.example", 443, True),
        ("registry.example:5000", "registry.example", 5000, True),
        ("registry.example:5000", "registry.example", 443, False),
        ("10.1.2.3", "10.1.2.3", 443, True),
        ("10.1.2.3", "10.1.2.4", 443, False),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("10.0.0.0/8", "registry.example", 443, False),  # names are never resolved
        ("localhost", "127.0.0.1", 80, False),
        ("::1", "::1", 443, True),
        ("[::1]", "::1", 443, True),
        ("::1", "[::1]", 443, True),
        ("[::1]:5000", "::1", 5000, True),
        ("[::1]:5000", "::1", 5001, False),
        ("fd00::/8", "fd12::1", 443, True),
        ("fd00::/8", "fe80::1", 443, False),
    ],
)
def test_no_proxy_matches_as_curl_does(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    proxies = Proxies.from_environ({"no_proxy": no_proxy, "all_proxy": "http://proxy:3128"})
    assert proxies.bypass(host, port) is bypass
    assert proxies.for_url("https", host, port) == ("" if bypass else "http://proxy:3128")


def test_proxy_variables_are_read_as_httpx_and_requests_read_them() -> None:
    env = {"HTTP_PROXY": "http://upper:1", "http_proxy": "lower:3128", "ALL_PROXY": "http://a:1"}
    p = Proxies.from_environ(env)
    assert p.for_url("http", "r.example", 80) == "http://lower:3128"  # lower case wins; http://
    assert p.for_url("https", "r.example", 443) == "http://a:1"  # all_proxy fills in https
    assert Proxies.from_environ({"HTTPS_PROXY": "https://p:1"}).for_url("https", "r", 443) == (
        "https://p:1"
    )
    # an empty lower-case variable turns the upper-case one off
    off = Proxies.from_environ({"HTTPS_PROXY": "http://p:1", "https_proxy": ""})
    assert off.for_url("https", "r", 443) == ""
    # CGI: HTTP_PROXY may have come from a request's Proxy header (httpoxy)
    cgi = {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}
    assert Proxies.from_environ(cgi).for_url("http", "r", 80) == ""
    assert Proxies.from_environ({**cgi, "http_proxy": "http://ok:1"}).for_url("http", "r", 80) == (
        "http://ok:1"
    )
    assert Proxies.from_environ({}).for_url("https", "r", 443) == ""
    assert (
        Proxies.from_environ({"NO_PROXY": "*", "ALL_PROXY": "http://p:1"}).for_url("http", "r", 80)
        == ""
    )


def test_http_goes_to_the_proxy_in_absolute_form_with_its_credentials(
    echo_server: tuple[str, list[tuple[str, dict[str, str], bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loopback server plays the proxy: a forward proxy gets the request line with the whole
    URL, and ``Proxy-Authorization`` from the proxy URL's user info; ``no_proxy`` hosts go
    direct (the same server, asked for by a name the proxy is bypassed for)."""
    host, seen = echo_server
    _no_proxies(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://us%40er:p%3Ass@{host}")
    monkeypatch.setenv("NO_PROXY", "direct.example,localhost")
    port = host.rsplit(":", 1)[1]
    with Session(Options(retry=RetryPolicy(attempts=1))) as s:
        r = s._send_with_retries(Request(method="GET", url="http://reg.example:5000/v2/x"), None)
        assert (r.status, r.body) == (201, b"abc")
        r = s._send_with_retries(Request(method="GET", url=f"http://localhost:{port}/d"), None)
        assert r.status == 201
    (line, headers, _), (direct, direct_headers, _) = seen
    assert line == "GET http://reg.example:5000/v2/x HTTP/1.1"
    assert headers["host"] == "reg.example:5000"
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert direct == "GET /d HTTP/1.1"
    assert "proxy-authorization" not in direct_headers


def test_proxies_keep_the_context_lazy_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA bundle still loads on the first HTTPS request (through a proxy too), once for the
    session: the direct pool, the proxy's and an HTTPS proxy's own TLS share it."""
    _no_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens on port 9
    made = _count_contexts(monkeypatch)
    with Session(Options(retry=RetryPolicy(attempts=1))) as s:
        wire = s._wire
        assert isinstance(wire, CoreWire)
        assert made == []
        with pytest.raises(ConnectionLost, match="ConnectError"):
            s._send_with_retries(Request(method="GET", url="https://reg.example/v2/"), None)
        assert made == [1]
        assert set(wire._pools) == {("verified", "http://127.0.0.1:9")}
        tunnel = wire._pools[("verified", "http://127.0.0.1:9")]
        direct = wire._pool("verified")
        via_tls = wire._pool("verified", "https://127.0.0.1:9")
        assert tunnel._ssl_context is direct._ssl_context is via_tls._ssl_context
        assert via_tls._proxy_ssl_context is direct._ssl_context
        assert made == [1]


def test_a_proxy_pallet_cannot_speak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxies(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:s3cr3t@127.0.0.1:1080")
    with Session(Options()) as s:
        with pytest.raises(Unsupported) as ei:
            s._send_with_retries(Request(method="GET", url="http://reg.example/v2/"), None)
    assert str(ei.value) == (
        "proxy socks5://127.0.0.1:1080 from the environment: "
        "only http:// and https:// proxy URLs are supported"
    )


def test_a_plain_http_session_loads_httpcore_and_nothing_heavier() -> None:
    """Start-up of the push path: httpcore (and what it imports), never httpx, ``urllib.request``
    or the ``email``/``http.client`` stack."""
    code = (
        "import socket, sys, threading\n"
        "srv = socket.create_server(('127.0.0.1', 0))\n"
        "def serve():\n"
        "    c, _ = srv.accept()\n"
        "    c.recv(65536)\n"
        "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
        "    c.close()\n"
        "threading.Thread(target=serve, daemon=True).start()\n"
        "before = set(sys.modules)\n"
        "from pallet.remote import Options\n"
        "from pallet.remote.client import Session\n"
        "from pallet.remote.protocol import Request\n"
        "url = f'http://127.0.0.1:{srv.getsockname()[1]}/v2/'\n"
        "with Session(Options()) as s:\n"
        "    print(s._send_with_retries(Request(method='GET', url=url), None).status)\n"
        "heavy = ('httpcore', 'httpx', 'urllib.request', 'email', 'http.client')\n"
        "print(sorted(m for m in heavy if m in set(sys.modules) - before))\n"
    )
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["200", "['httpcore']"]
