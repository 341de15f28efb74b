"""Registry errors: a failed request with the distribution-spec diagnostics of its body.

::

    pallet.errors.Error
     └── RegistryError            an unexpected HTTP status (status, errors, temporary)
          ├── Unauthorized        401/403: credentials missing, wrong or short of a scope
          └── RegistryNotFound    404 (also pallet.errors.NotFound): manifest/blob/repo unknown

Connection failures that outlive the retries are :class:`pallet.errors.Unavailable`. Every
message names the object (blob digest, manifest reference) and the last status; none contains a
credential, token or query-string secret (URLs are passed through :func:`redact_url`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import Error, NotFound

__all__ = [
    "TEMPORARY_CODES",
    "Diagnostic",
    "RegistryError",
    "RegistryNotFound",
    "Unauthorized",
    "decode_errors",
    "redact_url",
]

# error codes whose presence makes a failure worth retrying (ggcr transport.Error.Temporary)
TEMPORARY_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE", "BLOB_UPLOAD_UNKNOWN"})
_SAFE_QUERY = frozenset({"digest", "mount", "from", "n", "last", "service", "scope", "tag"})
MAX_ERROR_BODY = 64 << 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One entry of ``{"errors": [{"code", "message", "detail"}]}``."""

    code: str
    message: str = ""
    detail: str = ""

    def __str__(self) -> str:
        out = self.code
        if self.message:
            out += f": {self.message}"
        if self.detail:
            out += f" ({self.detail})"
        return out


def decode_errors(body: bytes) -> list[Diagnostic]:
    """The diagnostics of an error body; ``[]`` when it is not the spec's JSON."""
    try:
        obj = json.loads(body[:MAX_ERROR_BODY])
    except (ValueError, UnicodeDecodeError):
        return []
    errs = obj.get("errors") if isinstance(obj, dict) else None
    if not isinstance(errs, list):
        return []
    out = []
    for e in errs:
        if not isinstance(e, dict):
            continue
        detail = e.get("detail", "")
        if not isinstance(detail, str):
            detail = json.dumps(detail, sort_keys=True)[:500]
        out.append(
            Diagnostic(
                code=str(e.get("code", "UNKNOWN")),
                message=str(e.get("message", ""))[:500],
                detail=detail[:500],
            )
        )
    return out


def redact_url(url: str) -> str:
    """``url`` without user info and with query values other than digests/repos hidden.

    Upload locations carry session state and storage redirects carry signatures; neither belongs
    in a log line or an error message.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [
        (k, v if k in _SAFE_QUERY else "REDACTED")
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe=":/,"), ""))


class RegistryError(Error):
    """A registry answered with an unexpected status.

    Attributes:
        status: the HTTP status (0 when no response was received).
        errors: the decoded distribution-spec diagnostics.
        temporary: whether retrying later may succeed (429, 5xx, TOOMANYREQUESTS, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        errors: Sequence[Diagnostic] = (),
        temporary: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)
        self.temporary = temporary

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.errors]


class Unauthorized(RegistryError):
    """401 or 403: the registry refused the credentials or the granted scope."""


class RegistryNotFound(RegistryError, NotFound):
    """404: the manifest, blob or repository does not exist there."""
