"""Where registry credentials come from, and how ``login``/``logout`` store them.

Lookup order for a registry host (first hit wins), as ggcr's default keychain:

1. ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``): ``credHelpers[<host>]``, else
   ``credsStore``, else ``auths`` (``auth`` = base64 ``user:password``, or ``username`` /
   ``password``, and ``identitytoken``). Keys of ``auths`` may be URLs (``https://host/v1/``).
2. ``$REGISTRY_AUTH_FILE`` (containers ``auth.json``, same ``auths`` format).
3. ``${XDG_RUNTIME_DIR}/containers/auth.json``.

Credential helpers speak the ``docker-credential-<name>`` protocol: ``get`` with the server URL on
stdin answers ``{"ServerURL", "Username", "Secret"}`` (``Username == "<token>"`` marks an identity
token); ``store`` and ``erase`` serve login and logout. Each helper is asked at most once per host
per :class:`Keychain` (slow helpers such as ``gcloud`` made every build slow elsewhere), with
concurrent callers for the same host waiting for the one call.

Docker Hub is stored under ``https://index.docker.io/v1/``, as ``docker login`` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import atomicfile
from ..errors import FailedPrecondition, InvalidArgument
from .auth import Credentials

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "DOCKER_HUB_KEY",
    "Keychain",
    "config_key",
    "docker_config_path",
    "erase_credentials",
    "normalize_host",
    "store_credentials",
]

log = logging.getLogger("pallet.remote")

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
HELPER_TIMEOUT = 60.0


def normalize_host(server: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000``; Docker Hub's aliases -> ``docker.io``."""
    s = server.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    s = s.split("/", 1)[0].lower()
    return "docker.io" if s in _HUB_HOSTS else s


def config_key(host: str) -> str:
    """The key ``docker login`` stores ``host`` under."""
    h = normalize_host(host)
    return DOCKER_HUB_KEY if h == "docker.io" else h


def docker_config_path() -> Path:
    d = os.environ.get("DOCKER_CONFIG")
    base = Path(d) if d else Path.home() / ".docker"
    return base / "config.json"


def _auth_files() -> list[Path]:
    files = [docker_config_path()]
    raf = os.environ.get("REGISTRY_AUTH_FILE")
    if raf:
        files.append(Path(raf))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        files.append(Path(xdg) / "containers" / "auth.json")
    return files


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise FailedPrecondition(f"credentials file {path}: {exc.strerror}") from None
    try:
        obj = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise InvalidArgument(f"credentials file {path}: invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"credentials file {path}: not a JSON object")
    return obj


def _from_entry(entry: Mapping[str, Any], where: str) -> Credentials | None:
    user = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            raw = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"credentials for {where}: 'auth' is not base64") from None
        if ":" not in raw:
            raise InvalidArgument(f"credentials for {where}: 'auth' is not user:password")
        user, password = raw.split(":", 1)
    ident = str(entry.get("identitytoken") or "")
    creds = Credentials(username=user, password=password, identity_token=ident)
    return creds if creds else None


def _run_helper(name: str, action: str, data: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # only for credential helpers: not at import

    prog = f"docker-credential-{name}"
    try:
        return subprocess.run(
            [prog, action],
            input=data,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise FailedPrecondition(f"credential helper {prog}: not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(
            f"credential helper {prog}: no answer in {HELPER_TIMEOUT:.0f} s"
        ) from None


def _helper_get(name: str, server: str) -> Credentials | None:
    res = _run_helper(name, "get", server)
    out = res.stdout.strip()
    if res.returncode != 0:
        msg = (out or res.stderr.strip()).splitlines()[:1]
        if msg and "credentials not found" in msg[0].lower():
            return None
        # the helper's own words, first line only: helpers do not print secrets on failure
        raise FailedPrecondition(
            f"credential helper docker-credential-{name} get {server}: "
            f"exit {res.returncode}: {msg[0][:200] if msg else ''}"
        )
    try:
        obj = json.loads(out)
    except ValueError:
        raise FailedPrecondition(
            f"credential helper docker-credential-{name} get {server}: answer is not JSON"
        ) from None
    user = str(obj.get("Username") or "")
    secret = str(obj.get("Secret") or "")
    if user == "<token>":
        return Credentials(identity_token=secret)
    creds = Credentials(username=user, password=secret)
    return creds if creds else None


class Keychain:
    """Credentials per registry host, from explicit values, config files and helpers (cached)."""

    def __init__(self, explicit: Mapping[str, Credentials] | None = None) -> None:
        self._explicit = {normalize_host(k): v for k, v in (explicit or {}).items()}
        self._lock = threading.Lock()
        self._cache: dict[str, Credentials | None] = {}
        self._inflight: dict[str, threading.Event] = {}

    def get(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (``localhost:5000``, ``docker.io``), or None (anonymous)."""
        h = normalize_host(host)
        if h in self._explicit:
            return self._explicit[h]
        while True:
            with self._lock:
                if h in self._cache:
                    return self._cache[h]
                ev = self._inflight.get(h)
                if ev is None:
                    ev = self._inflight[h] = threading.Event()
                    break
            ev.wait()
        try:
            creds = self._lookup(h)
        except BaseException:
            with self._lock:
                self._inflight.pop(h).set()
            raise
        with self._lock:
            self._cache[h] = creds
            self._inflight.pop(h).set()
        return creds

    def _lookup(self, host: str) -> Credentials | None:
        for i, path in enumerate(_auth_files()):
            cfg = _load(path)
            if not cfg:
                continue
            if i == 0:
                helpers = cfg.get("credHelpers") or {}
                helper = None
                if isinstance(helpers, dict):
                    for k, v in helpers.items():
                        if normalize_host(str(k)) == host:
                            helper = str(v)
                            break
                if helper is None and isinstance(cfg.get("credsStore"), str):
                    helper = cfg["credsStore"] or None
                if helper:
                    log.debug("credentials for %s: asking docker-credential-%s", host, helper)
                    creds = _helper_get(helper, config_key(host))
                    if creds is not None:
                        return creds
            auths = cfg.get("auths") or {}
            if not isinstance(auths, dict):
                continue
            for k, entry in auths.items():
                if normalize_host(str(k)) == host and isinstance(entry, dict):
                    creds = _from_entry(entry, f"{host} in {path}")
                    if creds is not None:
                        log.debug("credentials for %s: from %s", host, path)
                        return creds
        return None


def _write_config(path: Path, cfg: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomicfile.create(path, 0o600, prefix=".config.json.") as f:
        f.write(json.dumps(cfg, indent="\t").encode() + b"\n")


def _helper_for(cfg: Mapping[str, Any], host: str) -> str | None:
    helpers = cfg.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for k, v in helpers.items():
            if normalize_host(str(k)) == host and v:
                return str(v)
    store = cfg.get("credsStore")
    return store if isinstance(store, str) and store else None


def store_credentials(host: str, creds: Credentials, config_path: Path | None = None) -> Path:
    """Write ``creds`` for ``host`` where ``docker login`` would: a helper, else ``auths``."""
    path = config_path or docker_config_path()
    cfg = _load(path)
    h = normalize_host(host)
    key = config_key(h)
    helper = _helper_for(cfg, h)
    if helper:
        user = "<token>" if creds.identity_token else creds.username
        secret = creds.identity_token or creds.password
        payload = json.dumps({"ServerURL": key, "Username": user, "Secret": secret})
        res = _run_helper(helper, "store", payload)
        if res.returncode != 0:
            raise FailedPrecondition(
                f"credential helper docker-credential-{helper} store {key}: exit {res.returncode}"
            )
        auths = cfg.setdefault("auths", {})
        if isinstance(auths, dict):
            auths.setdefault(key, {})
    else:
        entry: dict[str, str] = {}
        if creds.username or creds.password:
            entry["auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        if creds.identity_token:
            entry["identitytoken"] = creds.identity_token
        auths = cfg.get("auths")
        if not isinstance(auths, dict):
            auths = cfg["auths"] = {}
        for k in [k for k in auths if normalize_host(str(k)) == h and k != key]:
            del auths[k]
        auths[key] = entry
    _write_config(path, cfg)
    return path


def erase_credentials(host: str, config_path: Path | None = None) -> bool:
    """Remove ``host``'s credentials (helper ``erase`` and ``auths``); True if any were there."""
    path = config_path or docker_config_path()
    cfg = _load(path)
    h = normalize_host(host)
    removed = False
    helper = _helper_for(cfg, h)
    if helper:
        res = _run_helper(helper, "erase", config_key(h))
        removed = res.returncode == 0
    auths = cfg.get("auths")
    if isinstance(auths, dict):
        for k in [k for k in auths if normalize_host(str(k)) == h]:
            del auths[k]
            removed = True
    if path.exists():
        _write_config(path, cfg)
    return removed
