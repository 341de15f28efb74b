"""Registry authentication, sans-IO: challenges, token requests and responses, a token cache.

* ``WWW-Authenticate`` is parsed per RFC 7235 section 4.1 (several challenges in one field, quoted
  strings with escaped quotes and commas, token68), see :func:`parse_challenges`.
* Bearer (distribution ``docs/spec/auth/token.md``): ``GET <realm>?service=..&scope=..`` with Basic
  credentials or anonymously; with an identity token, the OAuth2 form ``POST`` with
  ``grant_type=refresh_token`` (``oauth.md``). ``token`` and ``access_token`` are equivalent;
  ``expires_in`` defaults to 60 s. Tokens are reused until shortly before they expire.
* Scopes: ``repository:<name>:pull`` to read, ``repository:<name>:pull,push`` to write, plus
  ``repository:<source>:pull`` for each cross-repository mount source.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..errors import InvalidArgument
from .errors import Unauthorized
from .protocol import Request, Response, check

__all__ = [
    "DEFAULT_EXPIRES_IN",
    "Challenge",
    "Credentials",
    "Token",
    "TokenCache",
    "basic_header",
    "merge_scopes",
    "parse_challenges",
    "parse_token_response",
    "repository_scope",
    "token_request",
]

DEFAULT_EXPIRES_IN = 60
CLIENT_ID = "pallet"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A user name and password, or an identity (refresh) token. Never printed."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    scheme: str  # lower-case: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)
    token68: str = ""

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        s = self.params.get("scope", "")
        return tuple(x for x in s.split(" ") if x)


_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_T68 = _TCHAR | set("/=")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def token(self, chars: set[str] = _TCHAR) -> str:
        j = self.i
        while self.i < len(self.s) and self.s[self.i] in chars:
            self.i += 1
        return self.s[j : self.i]

    def bare(self) -> str:
        """An unquoted value; lenient (up to ``,`` or space) for realms written without quotes."""
        j = self.i
        while self.i < len(self.s) and self.s[self.i] not in ", \t":
            self.i += 1
        return self.s[j : self.i]

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c == '"':
                self.i += 1
                return "".join(out)
            out.append(c)
            self.i += 1
        raise InvalidArgument("WWW-Authenticate: unterminated quoted string")


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one or more ``WWW-Authenticate`` field values into challenges.

    ``Bearer realm="https://a/token",service="r",scope="repository:x:pull,push"`` gives one
    challenge; ``Basic realm="x", Bearer realm="y"`` gives two. Malformed input yields what could
    be read before the error.
    """
    if isinstance(values, str):
        values = [values]
    out: list[Challenge] = []
    for value in values:
        lx = _Lexer(value)
        try:
            _parse_field(lx, out)
        except InvalidArgument:
            continue
    return out


def _parse_field(lx: _Lexer, out: list[Challenge]) -> None:
    while True:
        lx.ws()
        while lx.peek() == ",":
            lx.i += 1
            lx.ws()
        if not lx.peek():
            return
        scheme = lx.token()
        if not scheme:
            raise InvalidArgument("WWW-Authenticate: expected an auth scheme")
        ch = Challenge(scheme=scheme.lower())
        out.append(ch)
        lx.ws()
        # token68 or auth-params, until the next scheme
        start = lx.i
        t = lx.token(_T68)
        lx.ws()
        if t and lx.peek() != "=" and (lx.peek() in (",", "")) and "=" not in t.rstrip("="):
            out[-1] = Challenge(scheme=ch.scheme, token68=t)
            continue
        if t and t.endswith("=") and lx.peek() in (",", ""):
            out[-1] = Challenge(scheme=ch.scheme, token68=t)
            continue
        lx.i = start
        params: dict[str, str] = {}
        while True:
            lx.ws()
            mark = lx.i
            name = lx.token()
            lx.ws()
            if not name or lx.peek() != "=":
                lx.i = mark  # the next challenge's scheme
                break
            lx.i += 1
            lx.ws()
            val = lx.quoted() if lx.peek() == '"' else lx.bare()
            params[name.lower()] = val
            lx.ws()
            if lx.peek() == ",":
                lx.i += 1
                continue
            break
        out[-1] = Challenge(scheme=ch.scheme, params=params)


def repository_scope(repo: str, *actions: str) -> str:
    return f"repository:{repo}:{','.join(actions)}"


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """Union of scopes; actions of one resource merged (``pull`` + ``push``: ``pull,push``)."""
    merged: dict[str, list[str]] = {}
    for group in groups:
        for s in group:
            rtype, _, rest = s.partition(":")
            name, _, actions = rest.rpartition(":")
            if not name:
                merged.setdefault(s, [])
                continue
            acts = merged.setdefault(f"{rtype}:{name}", [])
            for a in actions.split(","):
                if a and a not in acts:
                    acts.append(a)
    out = []
    for key, acts in merged.items():
        out.append(f"{key}:{','.join(sorted(acts))}" if acts else key)
    return tuple(sorted(out))


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    token: str = field(repr=False)
    expires_at: float
    refresh_token: str = field(default="", repr=False)

    def valid(self, now: float | None = None, margin: float = 5.0) -> bool:
        return (time.time() if now is None else now) < self.expires_at - margin


def token_request(
    challenge: Challenge,
    scopes: Iterable[str],
    creds: Credentials | None,
    *,
    offline: bool = False,
) -> Request:
    """The request that obtains a bearer token for ``scopes`` (no I/O)."""
    realm = challenge.realm
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"bearer realm {realm!r}: not an http(s) URL")
    scope_list = list(scopes)
    if creds is not None and creds.identity_token:
        form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", creds.identity_token),
            ("client_id", CLIENT_ID),
        ]
        if challenge.service:
            form.append(("service", challenge.service))
        if scope_list:
            form.append(("scope", " ".join(scope_list)))
        return Request(
            method="POST",
            url=realm,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(form).encode(),
            retry=True,
            what=f"token from {parts.netloc}",
        )
    query: list[tuple[str, str]] = []
    if challenge.service:
        query.append(("service", challenge.service))
    query.extend(("scope", s) for s in scope_list)
    headers: dict[str, str] = {}
    if creds is not None and (creds.username or creds.password):
        query.append(("account", creds.username))
        headers["Authorization"] = basic_header(creds)
    if offline:
        query.extend([("offline_token", "true"), ("client_id", CLIENT_ID)])
    q = urlencode(query, safe=":/,")
    url = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, f"{parts.query}&{q}" if parts.query else q, "")
    )
    return Request(
        method="GET", url=url, headers=headers, retry=True, what=f"token from {parts.netloc}"
    )


def parse_token_response(resp: Response, *, now: float | None = None) -> Token:
    """The token of a realm's answer (``token`` or ``access_token``; ``expires_in`` default 60).

    Raises:
        Unauthorized: the realm refused (401/403) or answered without a token.
    """
    check(resp, (200,), f"token request to {urlsplit(resp.url).netloc}")
    try:
        obj = json.loads(resp.body)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise Unauthorized(
            f"token request to {urlsplit(resp.url).netloc}: answer is not a JSON object",
            status=resp.status,
        )
    tok = obj.get("token") or obj.get("access_token")
    if not isinstance(tok, str) or not tok:
        raise Unauthorized(
            f"token request to {urlsplit(resp.url).netloc}: no token in the answer",
            status=resp.status,
        )
    exp = obj.get("expires_in")
    expires_in = exp if isinstance(exp, int | float) and exp > 0 else DEFAULT_EXPIRES_IN
    start = time.time() if now is None else now
    refresh = obj.get("refresh_token")
    return Token(
        token=tok,
        expires_at=start + float(expires_in),
        refresh_token=refresh if isinstance(refresh, str) else "",
    )


class TokenCache:
    """Tokens by ``(realm, service, scopes)``, reused until they are about to expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, tuple[str, ...]], Token] = {}

    @staticmethod
    def key(ch: Challenge, scopes: Iterable[str]) -> tuple[str, str, tuple[str, ...]]:
        return (ch.realm, ch.service, tuple(sorted(scopes)))

    def get(self, ch: Challenge, scopes: Iterable[str]) -> Token | None:
        with self._lock:
            tok = self._tokens.get(self.key(ch, scopes))
        return tok if tok is not None and tok.valid() else None

    def put(self, ch: Challenge, scopes: Iterable[str], tok: Token) -> None:
        with self._lock:
            self._tokens[self.key(ch, scopes)] = tok

    def drop(self, ch: Challenge, scopes: Iterable[str]) -> None:
        with self._lock:
            self._tokens.pop(self.key(ch, scopes), None)
