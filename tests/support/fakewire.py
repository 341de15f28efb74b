"""A :class:`~pallet.remote.wire.Wire` that answers from a function: no sockets.

The shape of ``httpx.MockTransport``, at pallet's own seam: ``FakeWire(handler)`` goes into
``Options(wire=...)``, and every request the Session sends reaches ``handler`` as a pallet
:class:`~pallet.remote.protocol.Request` (``headers`` case-insensitive, ``body`` the bytes sent,
streamed bodies joined). The handler returns a :class:`~pallet.remote.protocol.Response`
(:func:`respond` builds one) or raises :class:`~pallet.remote.wire.WireError` to fail the
connection, as a real wire does. Everything above the wire (auth, redirects, retries, flows) is
the code production runs.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pallet.remote.protocol import Headers, Request, Response
from pallet.remote.wire import Body, Reply

__all__ = ["FakeWire", "Handler", "respond"]

Handler = Callable[[Request], Response]


def respond(
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    json: Any = None,
    reason: str = "",
) -> Response:
    """A response for a handler to return; ``json`` is encoded into the body."""
    hdrs = dict(headers or {})
    if json is not None:
        body = jsonlib.dumps(json).encode()
        hdrs.setdefault("Content-Type", "application/json")
    return Response(
        method="", url="", status=status, headers=Headers(hdrs.items()), body=body, reason=reason
    )


class _Reply:
    def __init__(self, resp: Response) -> None:
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self._body = resp.body

    def chunks(self) -> Iterator[bytes]:
        if self._body:
            yield self._body

    def close(self) -> None:
        pass


class FakeWire:
    """Answers every request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def open(self, method: str, url: str, headers: dict[str, str], content: Body) -> Reply:
        body = content if content is None or isinstance(content, bytes) else b"".join(content)
        req = Request(method=method, url=url, headers=Headers(headers.items()), body=body)
        return _Reply(self.handler(req))

    def close(self) -> None:
        pass
