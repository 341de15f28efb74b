"""Registry client: push, pull, resolve, login (OCI distribution spec + Docker token auth).

Layout (sans-IO core, one driver)::

    protocol.py     requests/responses as data; upload, download and manifest flows
    auth.py         WWW-Authenticate parsing, token requests/responses, token cache
    credentials.py  Docker config / containers auth.json / credential helpers; login storage
    client.py       Session: auth, redirects, retries over one wire
    wire.py         the only code that touches the HTTP library: httpcore pools, direct or
                    through the proxies the environment names
    push.py         graph push: blobs in parallel, manifests after their children
    resolver.py     resolve, fetch_manifest, pull into a content store
    login.py        login / logout

Importing this package imports no HTTP library; the first :class:`Session` imports httpcore.
"""

from __future__ import annotations

from ..oci.reference import Reference
from .auth import Credentials
from .errors import Diagnostic, RegistryError, RegistryNotFound, Unauthorized
from .login import login, logout
from .options import Options
from .protocol import PushOutcome, RetryPolicy
from .push import PushResult, push, push_by_digest
from .resolver import fetch_manifest, pull, resolve

__all__ = [
    "Credentials",
    "Diagnostic",
    "Options",
    "PushOutcome",
    "PushResult",
    "Reference",
    "RegistryError",
    "RegistryNotFound",
    "RetryPolicy",
    "Unauthorized",
    "fetch_manifest",
    "login",
    "logout",
    "pull",
    "push",
    "push_by_digest",
    "resolve",
]
