"""Credentials end to end: login/logout, Docker config, helpers, identity tokens, scopes, and
a search of everything pallet printed or logged for secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.errors import Error
from pallet.metadata.store import Store
from pallet.progress import Progress
from pallet.remote import (
    Credentials,
    Options,
    PushOutcome,
    RetryPolicy,
    Unauthorized,
    login,
    logout,
    pull,
    push,
)
from support.images import random_image
from support.registry import PASSWORD, USER, Registry, options_for
from support.validate import validate_image

pytestmark = pytest.mark.integration


def anon(reg: Registry, **kw: object) -> Options:
    """Options without explicit credentials (they must come from config files)."""
    return options_for(reg, credentials={}, **kw)


def config_path() -> Path:
    return Path(os.environ["DOCKER_CONFIG"]) / "config.json"


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_login_push_logout(
    kind: str, request: pytest.FixtureRequest, store: Store, repo: str
) -> None:
    reg: Registry = request.getfixturevalue(f"{kind}_registry")
    root = random_image(store, 71, sizes=[2000]).manifest
    o = anon(reg)
    with pytest.raises(Unauthorized):
        login(reg.host, USER, "not-the-password", options=o)
    assert not config_path().exists()  # nothing written on a refused login
    path = login(reg.host, USER, PASSWORD, options=o)
    assert path == config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = json.loads(path.read_text())
    assert base64.b64decode(cfg["auths"][reg.host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    res = push(store.content, root, f"{reg.host}/{repo}:v1", options=o)
    assert res[0].descriptor.digest == root.digest
    assert logout(reg.host) is True
    assert reg.host not in json.loads(path.read_text())["auths"]
    with pytest.raises(Unauthorized):
        push(store.content, root, f"{reg.host}/{repo}:v2", options=o)


def _helper(bin_dir: Path, log: Path, user: str, secret: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "docker-credential-pallettest"
    script.write_text(
        "#!/bin/sh\n"
        f'read -r server; echo "$1 $server" >> {log}\n'
        f'[ "$1" = get ] && printf \'{{"ServerURL":"%s","Username":"{user}",'
        f'"Secret":"{secret}"}}\' "$server"\n'
        "exit 0\n"
    )
    script.chmod(0o755)


def test_credential_helper_is_asked_once_per_registry(
    token_registry: Registry,
    store: Store,
    store2: Store,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "helper.log"
    _helper(tmp_path / "bin", log, USER, PASSWORD)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(json.dumps({"credHelpers": {token_registry.host: "pallettest"}}))
    root = random_image(store, 72, sizes=[1000, 2000, 3000, 4000]).manifest
    push(store.content, root, f"{token_registry.host}/{repo}:v1", options=anon(token_registry))
    assert log.read_text().splitlines() == [f"get {token_registry.host}"]
    got = pull(f"{token_registry.host}/{repo}:v1", store2.content, options=anon(token_registry))
    assert len(log.read_text().splitlines()) == 2  # one more run, one more call
    validate_image(store2.content, got)


def test_identity_token_uses_the_oauth2_refresh_grant(
    token_registry: Registry, store: Store, repo: str
) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.refresh_tokens["rt-identity-0123456789"] = USER
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(
        json.dumps({"auths": {token_registry.host: {"identitytoken": "rt-identity-0123456789"}}})
    )
    before = len(ts.requests)
    root = random_image(store, 73, sizes=[1000]).manifest
    push(store.content, root, f"{token_registry.host}/{repo}:v1", options=anon(token_registry))
    new = ts.requests[before:]
    assert new and all(r["method"] == "POST" for r in new)
    assert all(r["user"] == USER for r in new)


def test_registry_auth_file(
    tls_registry: Registry, store: Store, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {f"https://{tls_registry.host}/v2/": {"auth": token}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    root = random_image(store, 74, sizes=[1000]).manifest
    push(store.content, root, f"{tls_registry.host}/{repo}:v1", options=anon(tls_registry))


@pytest.fixture
def acl(token_registry: Registry) -> Iterator[None]:
    ts = token_registry.token_server
    assert ts is not None
    old = ts.acl
    ts.users["bob"] = "bobs-password"

    def rule(user: str | None, repo: str) -> set[str]:
        if user == "bob":
            return {"pull", "push"}
        if user == USER and not repo.startswith("private/"):
            return {"pull", "push"}
        return set()

    ts.acl = rule
    yield
    ts.acl = old


def test_mount_without_pull_on_the_source_falls_back(
    token_registry: Registry, store: Store, repo: str, acl: None
) -> None:
    root = random_image(store, 75, sizes=[3000, 4000]).manifest
    bob = options_for(
        token_registry,
        credentials={token_registry.host: Credentials(username="bob", password="bobs-password")},
    )
    push(store.content, root, f"{token_registry.host}/private/{repo[5:]}:v1", options=bob)
    # alice's pushes may not read private/*: the mount is refused, the upload goes ahead
    res = push(
        store.content, root, f"{token_registry.host}/{repo}:v1", options=options_for(token_registry)
    )
    assert set(res[0].blobs.values()) == {PushOutcome.UPLOADED}


def _failures(
    reg: Registry, o: Options, bad: Options, store: Store, store2: Store, root: object, repo: str
) -> list[str]:
    out = []
    calls = (
        lambda: push(store.content, root, f"{reg.host}/{repo}:v2", options=bad),  # type: ignore[arg-type]
        lambda: pull(f"{reg.host}/{repo}:v1", store2.content, options=bad),
        lambda: login(reg.host, USER, PASSWORD + "x", options=o),
    )
    for call in calls:
        try:
            call()
        except Error as exc:
            out.append(f"{exc!s} {exc!r}")
    return out


def test_no_secret_in_output_logs_progress_or_errors(
    token_registry: Registry,
    tls_registry: Registry,
    store: Store,
    store2: Store,
    repo: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    events: list[Progress] = []
    errors: list[str] = []
    try:
        root = random_image(store, 76, sizes=[3 << 20, 5000]).manifest
        for reg in (token_registry, tls_registry):
            o = anon(
                reg,
                chunk_size=1 << 20,
                monolithic_max=1 << 20,
                retry=RetryPolicy(attempts=2, initial=0.01),
            )
            login(reg.host, USER, PASSWORD, options=o)
            push(store.content, root, f"{reg.host}/{repo}:v1", options=o, on_progress=events.append)
            got = pull(
                f"{reg.host}/{repo}:v1", store2.content, options=o, on_progress=events.append
            )
            validate_image(store2.content, got)
            bad = options_for(
                reg, credentials={reg.host: Credentials(username=USER, password=PASSWORD + "x")}
            )
            errors += _failures(reg, o, bad, store, store2, root, repo)
            logout(reg.host)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    assert len(errors) == 6
    out, err = capfd.readouterr()
    haystack = "\n".join([buf.getvalue(), out, err, *errors, *(repr(e) for e in events)])
    # it did log, down to the HTTP engine's trace (which includes response headers)
    assert "receive_response_headers" in buf.getvalue() and "pallet.remote" in buf.getvalue()
    ts = token_registry.token_server
    assert ts is not None and ts.issued
    secrets = [
        PASSWORD,
        base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
        base64.b64encode(f"{USER}:{PASSWORD}x".encode()).decode(),
        *ts.issued,
        *(t.split(".")[2] for t in ts.issued),  # the signatures alone
    ]
    for s in secrets:
        assert s not in haystack, f"secret leaked: {s[:12]}..."
