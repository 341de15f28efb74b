"""``login`` and ``logout``, as ``docker login``/``docker logout`` do them.

``login`` first proves the credentials to the registry (``GET /v2/`` with Basic credentials, or
a token request to the Bearer realm), then stores them in the Docker config (through the
configured credential helper, else base64 in ``auths``). Nothing is written when the registry
refuses.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .auth import Credentials, parse_token_response
from .credentials import erase_credentials, normalize_host, store_credentials
from .errors import Unauthorized
from .options import Options
from .protocol import check

__all__ = ["login", "logout"]


def _api_host(host: str) -> str:
    return "registry-1.docker.io" if host == "docker.io" else host


def login(
    registry: str,
    username: str,
    password: str,
    config_path: str | Path | None = None,
    *,
    options: Options | None = None,
) -> Path:
    """Verify ``username``/``password`` against ``registry``, then store them.

    Args:
        registry: ``host[:port]`` (a URL is accepted; ``docker.io`` means Docker Hub).
        config_path: the ``config.json`` to write (default ``$DOCKER_CONFIG/config.json``).
        options: CA bundle, insecure hosts (``registry`` among them for plain HTTP or
            unverified TLS).

    Returns:
        The path of the configuration file written.

    Raises:
        Unauthorized: the registry refused the credentials (nothing written).
    """
    from .client import Session

    host = normalize_host(registry)
    creds = Credentials(username=username, password=password)
    opts = options or Options()
    opts = replace(opts, credentials={host: creds})
    api = _api_host(host)
    with Session(opts) as s:
        ch = s.challenge(api)
        if ch is not None and ch.scheme == "basic":
            resp = s.get_with_basic(api, creds)
            check(resp, (200,), f"login to {host} as {username}")
        elif ch is not None and ch.scheme == "bearer":
            resp = s.fetch_token(ch, (), creds, offline=False)
            if resp.status != 200:
                check(resp, (200,), f"login to {host} as {username}")
            parse_token_response(resp)
        elif ch is not None:
            raise Unauthorized(f"login to {host}: unsupported auth scheme {ch.scheme!r}")
    return store_credentials(host, creds, Path(config_path) if config_path else None)


def logout(registry: str, config_path: str | Path | None = None) -> bool:
    """Forget the credentials for ``registry``; True if there were any."""
    return erase_credentials(normalize_host(registry), Path(config_path) if config_path else None)
