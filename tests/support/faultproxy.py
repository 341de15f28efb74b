"""A threaded HTTP/1.1 proxy on 127.0.0.1 that injects faults in front of a real registry.

Each client request is parsed (head and ``Content-Length`` body), matched against :class:`Rule`\\ s
in order, then answered, broken or forwarded to the upstream over a fresh connection.

Two modes, as a reverse proxy in front of a registry can be configured:

* ``buffer=True`` (the default; nginx's default ``proxy_request_buffering on``): request
  buffering. A request goes upstream only once its whole body has arrived; a request whose
  connection drops (a ``reset`` rule, or the client going away) forwards nothing, so the
  registry never sees any of it, and the client's next ``GET`` of the upload session reports
  the session as it was before that request.
* ``buffer=False`` (``proxy_request_buffering off``): what arrived of a dropped request is
  streamed to the registry before the upstream connection is reset too.

Faults:

* ``respond``: a canned status (500, 502, 503, 429 + ``Retry-After``, 401 for a mount ...), body
  read and dropped;
* ``reset``: read ``after`` body bytes, then reset the client connection (RST). With ``at``
  set instead, the drop happens where the upload reaches byte ``at`` of the blob: the rule
  matches only a request whose body covers that byte (the body starts at its ``Content-Range``,
  or at 0 without one), and reads ``at`` minus that start. Either way, what the registry gets
  of the dropped request depends on the mode;
* ``cut``: forward, then send only ``after`` bytes of the response body and reset (downloads);
* ``delay``: forward, then wait ``seconds`` before answering;
* ``strip_mount``: forward a mount ``POST`` without ``mount``/``from`` (the registry answers 202);
* ``redirect``: answer ``307`` to the same path on ``target`` origin.

It also serves as a forward proxy (``HTTP_PROXY``): a request in absolute form
(``GET http://host/path``) is forwarded, and logged with that target, like any other; a
``CONNECT host:port`` (``HTTPS_PROXY``) is logged, then tunnelled to ``host:port`` unchanged.

Everything seen is logged in :attr:`FaultProxy.log` (method, path, status, request body bytes,
whether ``Authorization`` was present), so a test can assert exact request sequences and count how
many upload bytes were sent more than once.
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Entry", "FaultProxy", "Rule"]


@dataclass
class Rule:
    method: str
    path: str  # regex searched in the request target (path + query)
    action: str  # respond | reset | cut | delay | strip_mount | redirect
    times: int = 1  # how often it fires (-1: always)
    skip: int = 0  # matching requests to let through first
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    after: int = 0
    at: int | None = None  # reset: drop where the upload reaches this byte of the blob
    seconds: float = 0.0
    target: str = ""
    fired: int = 0

    def matches(self, method: str, target: str, span: tuple[int, int]) -> bool:
        if self.at is not None and not span[0] <= self.at < span[1]:
            return False
        return (self.method in ("*", method)) and re.search(self.path, target) is not None

    def cut_after(self, start: int) -> int:
        """Body bytes to read before a ``reset``."""
        return self.after if self.at is None else self.at - start


@dataclass
class Entry:
    method: str
    target: str
    host: str
    status: int
    sent: int  # request body bytes received from the client
    received: int  # response body bytes sent to the client
    authorization: bool
    fault: str = ""


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at EOF)."""
        out = bytearray()
        if self.buf:
            take = self.buf[:n]
            self.buf = self.buf[len(take) :]
            out += take
        while len(out) < n:
            data = self.sock.recv(min(1 << 20, n - len(out)))
            if not data:
                break
            out += data
        return bytes(out)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def _span(headers: list[tuple[str, str]], length: int) -> tuple[int, int]:
    """Where a request body lies in the blob: from its ``Content-Range`` start (else 0)."""
    m = re.match(r"^(?:bytes[ =])?(\d+)-", _get(headers, "Content-Range") or "")
    start = int(m.group(1)) if m else 0
    return start, start + length


class FaultProxy:
    def __init__(self, upstream: str, *, buffer: bool = True) -> None:
        self.upstream = upstream
        self.buffer = buffer
        self.rules: list[Rule] = []
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statistics ------------------------------------------------------------------------
    def upload_bytes(self) -> int:
        """Body bytes clients sent to upload sessions (PATCH/PUT on ``/blobs/uploads/``)."""
        with self._lock:
            return sum(
                e.sent
                for e in self.log
                if e.method in ("PATCH", "PUT", "POST") and "/blobs/uploads/" in e.target
            )

    def entries(self, method: str = "*", path: str = "") -> list[Entry]:
        with self._lock:
            return [
                e
                for e in self.log
                if method in ("*", e.method) and re.search(path, e.target) is not None
            ]

    # -- serving ---------------------------------------------------------------------------
    def _rule(self, method: str, target: str, span: tuple[int, int]) -> Rule | None:
        with self._lock:
            for r in self.rules:
                if r.times != -1 and r.fired >= r.times + r.skip:
                    continue
                if r.matches(method, target, span):
                    r.fired += 1
                    if r.fired <= r.skip:
                        return None
                    return r
        return None

    def _record(self, e: Entry) -> None:
        with self._lock:
            self.log.append(e)

    def _serve(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        try:
            while True:
                head = conn.read_head()
                if head is None:
                    return
                if not self._one(conn, head):
                    return
        except OSError:
            return

    def _one(self, conn: _Conn, head: bytes) -> bool:
        line, headers = _parse_head(head)
        method, target, _version = line.split(" ", 2)
        length = int(_get(headers, "Content-Length") or "0")
        host = _get(headers, "Host") or ""
        auth = _get(headers, "Authorization") is not None
        if method == "CONNECT":
            self._record(Entry(method, target, host, 200, 0, 0, auth))
            self._tunnel(conn, target)
            return False
        span = _span(headers, length)
        rule = self._rule(method, target, span)
        action = rule.action if rule else ""

        def entry(status: int, sent: int, received: int = 0) -> Entry:
            return Entry(method, target, host, status, sent, received, auth, action)

        if rule is not None and action == "reset":
            got = conn.read(min(length, rule.cut_after(span[0])))
            self._dropped(line, headers, got)
            self._record(entry(0, len(got)))
            _rst(conn.sock)
            return False
        body = conn.read(length)
        if len(body) < length:  # the client went away mid-request
            self._dropped(line, headers, body)
            self._record(entry(0, len(body)))
            return False
        if rule is not None and action == "respond":
            hdrs = {"Content-Length": str(len(rule.body)), **rule.headers}
            if rule.body and "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            self._record(entry(rule.status, len(body), len(rule.body)))
            self._send(conn.sock, rule.status, hdrs, rule.body)
            return True
        if rule is not None and action == "redirect":
            sep = "&" if "?" in target else "?"
            hdrs = {
                "Location": f"http://{rule.target}{target}{sep}redirected=1",
                "Content-Length": "0",
            }
            self._record(entry(307, len(body)))
            self._send(conn.sock, 307, hdrs, b"")
            return True
        if rule is not None and action == "strip_mount":
            path, _, query = target.partition("?")
            kept = [p for p in query.split("&") if p and not p.startswith(("mount=", "from="))]
            target = path + ("?" + "&".join(kept) if kept else "")
            line = f"{method} {target} HTTP/1.1"
        status, resp_head, resp_body = self._forward(line, headers, body)
        if rule is not None and action == "cut":
            self._record(entry(status, len(body), min(rule.after, len(resp_body))))
            conn.sock.sendall(resp_head + resp_body[: rule.after])
            time.sleep(0.05)
            _rst(conn.sock)
            return False
        self._record(entry(status, len(body), len(resp_body)))
        if rule is not None and action == "delay":
            time.sleep(rule.seconds)
        conn.sock.sendall(resp_head + resp_body)
        return True

    def _dropped(self, line: str, headers: list[tuple[str, str]], got: bytes) -> None:
        """A request whose connection dropped after ``got``: a buffering proxy forwards nothing
        of it; a streaming one has passed ``got`` on, and then loses the upstream too."""
        if self.buffer or not got:
            return
        up = socket.create_connection(self._upstream_addr())
        up.sendall(self._request_head(line, headers) + got)
        time.sleep(0.2)  # let the registry write what it got
        _rst(up)

    @staticmethod
    def _tunnel(conn: _Conn, target: str) -> None:
        h, _, port = target.rpartition(":")
        with socket.create_connection((h.strip("[]"), int(port))) as up:
            conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if conn.buf:
                up.sendall(conn.buf)

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(1 << 16):
                        dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(up, conn.sock), daemon=True)
            back.start()
            pump(conn.sock, up)
            back.join()

    def _upstream_addr(self) -> tuple[str, int]:
        h, _, p = self.upstream.rpartition(":")
        return h, int(p)

    @staticmethod
    def _request_head(line: str, headers: list[tuple[str, str]]) -> bytes:
        out = [line]
        out += [f"{k}: {v}" for k, v in headers if k.lower() != "connection"]
        out.append("Connection: close")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def _forward(
        self, line: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, bytes]:
        with socket.create_connection(self._upstream_addr()) as up:
            up.sendall(self._request_head(line, headers) + body)
            chunks = []
            while True:
                data = up.recv(1 << 20)
                if not data:
                    break
                chunks.append(data)
        raw = b"".join(chunks)
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, rhdrs = _parse_head(head)
        status = int(status_line.split(" ")[1])
        method = line.split(" ", 1)[0]
        kept = [(k, v) for k, v in rhdrs if k.lower() != "connection"]
        chunked = (_get(rhdrs, "Transfer-Encoding") or "").lower() == "chunked"
        if (
            not chunked
            and _get(rhdrs, "Content-Length") is None
            and method != "HEAD"
            and status not in (204, 304)
        ):
            kept.append(("Content-Length", str(len(rest))))
        out = [status_line] + [f"{k}: {v}" for k, v in kept]
        return status, ("\r\n".join(out) + "\r\n\r\n").encode("latin-1"), rest

    @staticmethod
    def _send(sock: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
        reason = {401: "Unauthorized", 429: "Too Many Requests", 307: "Temporary Redirect"}.get(
            status, "Error"
        )
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
