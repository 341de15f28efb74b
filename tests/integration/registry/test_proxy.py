"""Push and pull through a proxy named by the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``NO_PROXY``): an in-process proxy on 127.0.0.1 in front of a real docker-registry."""

from __future__ import annotations

import pytest

from pallet.metadata.store import Store
from pallet.remote import pull, push, resolve
from support.faultproxy import FaultProxy
from support.images import random_image
from support.registry import Registry, options_for

pytestmark = pytest.mark.integration


def test_push_and_pull_through_an_http_proxy(
    plain_registry: Registry,
    store: Store,
    store2: Store,
    repo: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    img = random_image(store, 81, sizes=[300 << 10, 2000])
    root, blobs = img.manifest, img.blobs
    name = f"{plain_registry.host}/{repo}:v1"
    with FaultProxy(plain_registry.host) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
        res = push(store.content, root, name, options=options_for(plain_registry))
        got = pull(name, store2.content, options=options_for(plain_registry))
    assert res[0].descriptor == root
    assert got.digest == root.digest  # type: ignore[attr-defined]
    for d in blobs:
        assert store2.content.info(d.digest).size == d.size  # type: ignore[attr-defined]
    # every request went to the proxy, in absolute form, naming the registry
    base = f"http://{plain_registry.host}/v2/"
    assert proxy.log[0].target == base
    assert all(e.target.startswith(base) for e in proxy.log)
    assert {"GET", "HEAD", "POST", "PUT"} <= {e.method for e in proxy.log}
    assert {e.host for e in proxy.log} == {plain_registry.host}


def test_no_proxy_sends_the_registry_direct(
    plain_registry: Registry, store: Store, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = random_image(store, 82, sizes=[1000]).manifest
    name = f"{plain_registry.host}/{repo}:v1"
    with FaultProxy(plain_registry.host) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        push(store.content, root, name, options=options_for(plain_registry))
        assert resolve(name).digest == root.digest  # type: ignore[attr-defined]
    assert proxy.log == []


def test_https_registry_through_a_connect_tunnel(
    tls_registry: Registry, store: Store, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``https://`` goes through ``CONNECT``, TLS verified end to end against the registry's
    CA; a plain ``http://`` attempt (loopback hosts start there) does not use HTTPS_PROXY."""
    root = random_image(store, 83, sizes=[200 << 10]).manifest
    name = f"{tls_registry.host}/{repo}:v1"
    with FaultProxy(tls_registry.host) as proxy:
        monkeypatch.setenv("https_proxy", proxy.host)  # no scheme: http://
        res = push(store.content, root, name, options=options_for(tls_registry))
        desc = resolve(name, options=options_for(tls_registry))
    assert res[0].descriptor == root
    assert desc.digest == root.digest  # type: ignore[attr-defined]
    assert proxy.log
    assert {(e.method, e.target) for e in proxy.log} == {("CONNECT", tls_registry.host)}
