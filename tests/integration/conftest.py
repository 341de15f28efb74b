"""Registry fixtures (one real docker-registry per variant for the whole session), the interop
image set, and stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.metadata.db import DB, open_db
from support.images import Interop, build_interop
from support.registry import PASSWORD, USER, Registry, start_registry


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-tls"), tls=True, users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-token"), token=True, users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Interop:
    """The :class:`~support.images.Interop` images and archives, built once per session."""
    return build_interop(tmp_path_factory.mktemp("interop"))


@pytest.fixture
def repo() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DB]:
    d = open_db(tmp_path / "store")
    yield d
    d.close()


@pytest.fixture
def store2(tmp_path: Path) -> Iterator[DB]:
    d = open_db(tmp_path / "store2")
    yield d
    d.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(k)
    # no ambient credentials: every test says which it uses
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
