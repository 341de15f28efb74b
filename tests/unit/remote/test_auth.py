from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pallet.errors import FailedPrecondition
from pallet.remote.auth import (
    Challenge,
    Credentials,
    Token,
    TokenCache,
    merge_scopes,
    parse_challenges,
    parse_token_response,
    token_request,
)
from pallet.remote.credentials import (
    DOCKER_HUB_KEY,
    Keychain,
    erase_credentials,
    normalize_host,
    store_credentials,
)
from pallet.remote.errors import Unauthorized
from pallet.remote.protocol import Headers, Response


def test_bearer_challenge_with_quoted_commas() -> None:
    [ch] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert ch.scheme == "bearer"
    assert ch.realm == "https://auth.docker.io/token"
    assert ch.service == "registry.docker.io"
    assert ch.scopes == ("repository:samalba/my-app:pull,push",)


def test_several_challenges_escapes_and_token68() -> None:
    chs = parse_challenges(
        'Basic realm="a \\"quoted\\" realm", charset=UTF-8, Bearer realm=https://x/t , '
        'error="insufficient_scope", Negotiate abc+/==, Digest realm="d"'
    )
    assert [c.scheme for c in chs] == ["basic", "bearer", "negotiate", "digest"]
    assert chs[0].params == {"realm": 'a "quoted" realm', "charset": "UTF-8"}
    assert chs[1].params == {"realm": "https://x/t", "error": "insufficient_scope"}
    assert chs[2].token68 == "abc+/=="
    assert parse_challenges(["Basic", 'Bearer realm="r"'])[1].realm == "r"
    assert all(not c.realm for c in parse_challenges('Bearer realm="unterminated'))
    assert parse_challenges(["", "   "]) == []


def test_scope_merging() -> None:
    assert merge_scopes(
        ["repository:a:pull", "repository:b:push"], ["repository:a:push", "registry:catalog:*"]
    ) == ("registry:catalog:*", "repository:a:pull,push", "repository:b:push")


def test_token_request_forms() -> None:
    ch = Challenge(scheme="bearer", params={"realm": "https://auth/t?x=1", "service": "reg"})
    anon = token_request(ch, ["repository:a:pull", "repository:b:pull,push"], None)
    q = parse_qs(urlsplit(anon.url).query)
    assert q == {
        "x": ["1"],
        "service": ["reg"],
        "scope": ["repository:a:pull", "repository:b:pull,push"],
    }
    assert "Authorization" not in anon.headers and anon.method == "GET"
    basic = token_request(ch, ["repository:a:pull"], Credentials(username="u", password="p"))
    assert basic.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert parse_qs(urlsplit(basic.url).query)["account"] == ["u"]
    ident = token_request(ch, ["repository:a:pull"], Credentials(identity_token="rt"))
    assert ident.method == "POST"
    form = parse_qs(ident.body.decode())  # type: ignore[union-attr]
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt"]
    assert form["scope"] == ["repository:a:pull"] and form["service"] == ["reg"]


def _resp(status: int, obj: object) -> Response:
    return Response(
        method="GET",
        url="https://auth/t",
        status=status,
        headers=Headers(),
        body=json.dumps(obj).encode(),
    )


def test_token_responses() -> None:
    t = parse_token_response(_resp(200, {"token": "abc", "expires_in": 300}), now=1000.0)
    assert t.token == "abc" and t.expires_at == 1300.0
    t = parse_token_response(_resp(200, {"access_token": "xyz"}), now=1000.0)
    assert t.token == "xyz" and t.expires_at == 1060.0  # spec default: 60 s
    t = parse_token_response(
        _resp(200, {"token": "a", "refresh_token": "r", "expires_in": 0}), now=0
    )
    assert t.refresh_token == "r" and t.expires_at == 60
    with pytest.raises(Unauthorized):
        parse_token_response(_resp(401, {"details": "nope"}))
    with pytest.raises(Unauthorized, match="no token"):
        parse_token_response(_resp(200, {"foo": 1}))
    assert "abc" not in repr(Token(token="abc", expires_at=1))
    assert "secret" not in repr(
        Credentials(username="u", password="secret", identity_token="secret")
    )


def test_token_cache_expiry() -> None:
    ch = Challenge(scheme="bearer", params={"realm": "r"})
    cache = TokenCache()
    cache.put(ch, ["b", "a"], Token(token="t", expires_at=10**12))
    assert cache.get(ch, ["a", "b"]) is not None
    cache.put(ch, ["a"], Token(token="t", expires_at=0))
    assert cache.get(ch, ["a"]) is None


# -- credentials -----------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "docker").mkdir()
    return tmp_path / "docker" / "config.json"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_normalize_host() -> None:
    assert normalize_host("https://index.docker.io/v1/") == "docker.io"
    assert normalize_host("registry-1.docker.io") == "docker.io"
    assert normalize_host("http://Reg.Example:5000/v2/") == "reg.example:5000"


def test_config_auths_forms(env: Path) -> None:
    env.write_text(
        json.dumps(
            {
                "auths": {
                    DOCKER_HUB_KEY: {"auth": _b64("hub:hubpw")},
                    "https://r1.example/v1/": {"username": "u1", "password": "p1"},
                    "r2.example:5000": {"identitytoken": "id-token"},
                    "r3.example": {"auth": _b64("u3:pw:with:colons")},
                }
            }
        )
    )
    kc = Keychain()
    assert kc.get("docker.io") == Credentials(username="hub", password="hubpw")
    assert kc.get("registry-1.docker.io") == Credentials(username="hub", password="hubpw")
    assert kc.get("r1.example") == Credentials(username="u1", password="p1")
    assert kc.get("r2.example:5000") == Credentials(identity_token="id-token")
    assert kc.get("r3.example") == Credentials(username="u3", password="pw:with:colons")
    assert kc.get("unknown.example") is None


def test_containers_auth_files(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raf = tmp_path / "raf.json"
    raf.write_text(json.dumps({"auths": {"a.example": {"auth": _b64("a:1")}}}))
    xdg = tmp_path / "run"
    (xdg / "containers").mkdir(parents=True)
    (xdg / "containers" / "auth.json").write_text(
        json.dumps(
            {"auths": {"b.example": {"auth": _b64("b:2")}, "a.example": {"auth": _b64("x:y")}}}
        )
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(raf))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    kc = Keychain()
    assert kc.get("a.example") == Credentials(username="a", password="1")
    assert kc.get("b.example") == Credentials(username="b", password="2")


def _helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "helper.log"
    script = bindir / "docker-credential-fake"
    script.write_text(f'#!/bin/sh\nread -r server\necho "$1 $server" >> {log}\n{body}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def test_cred_helpers_once_per_host(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _helper(
        tmp_path,
        monkeypatch,
        'case "$server" in\n'
        '  tok.example) echo \'{"Username":"<token>","Secret":"idt"}\';;\n'
        '  *.example|https://index.docker.io/v1/) echo \'{"Username":"h","Secret":"s"}\';;\n'
        "  *) echo 'credentials not found in native keychain'; exit 1;;\n"
        "esac",
    )
    env.write_text(
        json.dumps(
            {
                "credsStore": "fake",
                "credHelpers": {"tok.example": "fake"},
                "auths": {"none.test": {"auth": _b64("fall:back")}},
            }
        )
    )
    kc = Keychain()
    for _ in range(3):
        assert kc.get("r.example") == Credentials(username="h", password="s")
    assert kc.get("tok.example") == Credentials(identity_token="idt")
    assert kc.get("docker.io") == Credentials(username="h", password="s")
    assert kc.get("none.test") == Credentials(username="fall", password="back")
    lines = log.read_text().splitlines()
    assert lines == [
        "get r.example",
        "get tok.example",
        f"get {DOCKER_HUB_KEY}",
        "get none.test",
    ]


def test_failing_helper_is_an_error_without_secrets(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helper(tmp_path, monkeypatch, "echo 'backend locked' >&2; exit 3")
    env.write_text(json.dumps({"credsStore": "fake"}))
    with pytest.raises(FailedPrecondition, match="docker-credential-fake get r.example: exit 3"):
        Keychain().get("r.example")
    env.write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(FailedPrecondition, match="not found on PATH"):
        Keychain().get("r.example")


def test_store_and_erase(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env.write_text(
        json.dumps({"auths": {"https://r.example/v1/": {"auth": "old"}}, "psFormat": "x"})
    )
    store_credentials("r.example", Credentials(username="u", password="p"))
    cfg = json.loads(env.read_text())
    assert cfg["psFormat"] == "x"
    assert cfg["auths"] == {"r.example": {"auth": _b64("u:p")}}
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    store_credentials("docker.io", Credentials(username="h", password="q"))
    assert DOCKER_HUB_KEY in json.loads(env.read_text())["auths"]
    assert erase_credentials("r.example") is True
    assert erase_credentials("r.example") is False
    assert list(json.loads(env.read_text())["auths"]) == [DOCKER_HUB_KEY]
    # with a credsStore, the helper stores
    log = _helper(tmp_path, monkeypatch, "cat >/dev/null")
    env.write_text(json.dumps({"credsStore": "fake"}))
    store_credentials("h.example", Credentials(username="u", password="p"))
    assert json.loads(env.read_text())["auths"] == {"h.example": {}}
    assert log.read_text().splitlines()[0].startswith("store {")
