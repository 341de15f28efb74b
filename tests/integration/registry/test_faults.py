"""Push and pull through a fault-injecting proxy in front of a real docker-registry."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from pallet.metadata.store import Store
from pallet.oci.digest import Digest
from pallet.remote import Options, PushOutcome, RegistryError, RetryPolicy, pull, push, resolve
from support.faultproxy import FaultProxy, Rule
from support.images import random_image
from support.registry import Registry
from support.validate import validate_image

pytestmark = pytest.mark.integration

MiB = 1 << 20


def opts(**kw: object) -> Options:
    base: dict[str, object] = {
        "retry": RetryPolicy(attempts=6, initial=0.05, max_delay=0.5),
        "chunk_size": 1 * MiB,
        "chunk_max": 1 * MiB,
        "monolithic_max": 1 * MiB,
    }
    base.update(kw)
    return Options(**base)  # type: ignore[arg-type]


@pytest.fixture
def proxy(plain_registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(plain_registry.host) as p:
        yield p


def _total(descs: list[object]) -> int:
    return sum(d.size for d in descs)  # type: ignore[attr-defined]


def _check_in_registry(reg: Registry, repo: str, tag: str, root: object) -> None:
    got = resolve(f"{reg.host}/{repo}:{tag}")
    assert got.digest == root.digest  # type: ignore[attr-defined]


def test_reset_mid_upload_resumes_from_the_registry_range(
    plain_registry: Registry, store: Store, repo: str
) -> None:
    img = random_image(store, 11, sizes=[20 * MiB])
    root, blobs = img.manifest, img.blobs
    # nginx-style request buffering: the partial chunk never reaches the registry
    with FaultProxy(plain_registry.host, buffer=True) as p:
        p.add(Rule("PATCH", "/blobs/uploads/", "reset", skip=10, after=700 << 10))
        res = push(store.content, root, f"{p.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
        resent = p.upload_bytes() - _total(blobs)
        status_gets = p.entries("GET", "/blobs/uploads/")
        resets = [e for e in p.log if e.fault == "reset"]
    assert len(resets) == 1 and resets[0].sent == 700 << 10
    assert len(status_gets) == 1  # asked the registry where it was
    assert 0 < resent < 2 * MiB, resent  # not the 10 MiB a restart would cost
    # the client counts what it handed to the socket: the whole 1 MiB chunk it re-sent
    assert resent <= res[0].bytes_sent - _total(blobs) <= 1 * MiB
    _check_in_registry(plain_registry, repo, "v1", root)


def test_reset_mid_upload_streaming_proxy_still_succeeds(
    plain_registry: Registry, store: Store, repo: str
) -> None:
    """distribution 2.8 cancels a session whose size no longer matches its state token, so a
    partial chunk that reached it forces a restart; the push must still succeed."""
    img = random_image(store, 12, sizes=[6 * MiB])
    root, blobs = img.manifest, img.blobs
    with FaultProxy(plain_registry.host, buffer=False) as p:
        p.add(Rule("PATCH", "/blobs/uploads/", "reset", skip=3, after=300 << 10))
        push(store.content, root, f"{p.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
        resent = p.upload_bytes() - _total(blobs)
    assert resent <= 6 * MiB
    _check_in_registry(plain_registry, repo, "v1", root)


def test_a_drop_at_60_percent_behind_a_buffering_proxy_resends_less_than_half_the_blob(
    plain_registry: Registry, store: Store, repo: str
) -> None:
    """With the default sizes, a 40 MiB blob is resumable: the drop (at 24 MiB, where nginx's
    request buffering forwards nothing of the request it hit) costs that request's partial
    body, not the blob; a single PUT would have sent 64 MiB."""
    size = 40 * MiB
    img = random_image(store, 23, sizes=[size])
    layer = img.layers[0]
    o = Options(retry=RetryPolicy(attempts=6, initial=0.05, max_delay=0.5))
    with FaultProxy(plain_registry.host, buffer=True) as p:
        p.add(Rule("*", "/blobs/uploads/", "reset", at=24 * MiB))
        res = push(store.content, img.manifest, f"{p.host}/{repo}:v1", options=o)  # type: ignore[arg-type]
        sent = p.upload_bytes() - img.config.size
        resets = [e for e in p.log if e.fault == "reset"]
        posts = p.entries("POST", "/blobs/uploads/")
        status_gets = p.entries("GET", "/blobs/uploads/")
    assert len(resets) == 1
    assert sent < 1.5 * size, sent / size
    assert sent - size <= 16 * MiB  # at most one first chunk lost
    assert len(posts) == 2 and len(status_gets) == 1  # resumed in its session, not restarted
    assert res[0].blobs[layer.digest] is PushOutcome.UPLOADED
    assert res[0].bytes_sent >= sent + img.config.size
    # the registry holds the blob under its digest, and its bytes hash to it
    url = f"http://{plain_registry.host}/v2/{repo}/blobs/{layer.digest}"
    with urllib.request.urlopen(url, timeout=30) as r:
        got = r.read()
    assert len(got) == size and f"sha256:{hashlib.sha256(got).hexdigest()}" == layer.digest
    _check_in_registry(plain_registry, repo, "v1", img.manifest)


def test_5xx_and_429_with_retry_after(proxy: FaultProxy, store: Store, repo: str) -> None:
    root = random_image(store, 13, sizes=[3 * MiB, 1000]).manifest
    proxy.add(Rule("HEAD", r"/blobs/sha256:", "respond", status=502))
    proxy.add(Rule("POST", r"/blobs/uploads/$", "respond", status=503))
    proxy.add(Rule("PATCH", r"/blobs/uploads/", "respond", status=500, skip=1))
    proxy.add(Rule("PUT", r"/blobs/uploads/", "respond", status=500))
    proxy.add(
        Rule(
            "PUT",
            r"/manifests/v1$",
            "respond",
            status=429,
            headers={"Retry-After": "1"},
            body=json.dumps(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}
            ).encode(),
        )
    )
    t0 = time.monotonic()
    push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.0  # Retry-After honoured
    faults = [e for e in proxy.log if e.fault == "respond"]
    assert sorted(e.status for e in faults) == [429, 500, 500, 502, 503]
    puts = proxy.entries("PUT", r"/manifests/v1$")
    assert [e.status for e in puts] == [429, 201]
    got = resolve(f"{proxy.host}/{repo}:v1", options=opts())
    assert got.digest == root.digest


def test_slow_responses_and_timeouts(proxy: FaultProxy, store: Store, repo: str) -> None:
    root = random_image(store, 14, sizes=[2 * MiB]).manifest
    proxy.add(Rule("HEAD", r"/blobs/sha256:", "delay", seconds=0.3, times=-1))
    proxy.add(Rule("HEAD", r"/manifests/", "delay", seconds=2.0))  # beyond the read timeout
    push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts(read_timeout=1.0))  # type: ignore[arg-type]
    heads = proxy.entries("HEAD", r"/manifests/")
    # the "is it there already" HEAD timed out and was sent again (404); the manifest push
    # does not ask the same again
    assert len(heads) == 2
    assert heads[1].status == 404
    assert resolve(f"{proxy.host}/{repo}:v1").digest == root.digest  # type: ignore[attr-defined]


def _first_push(reg: Registry, store: Store, repo: str) -> tuple[object, list[object]]:
    img = random_image(store, 15, sizes=[2 * MiB, 3000])
    root, blobs = img.manifest, img.blobs
    push(store.content, root, f"{reg.host}/{repo}-base:v1", options=opts())  # type: ignore[arg-type]
    return root, blobs


def test_mount_answering_401_falls_back_to_upload(
    plain_registry: Registry, proxy: FaultProxy, store: Store, repo: str
) -> None:
    root, blobs = _first_push(plain_registry, store, repo)
    proxy.add(Rule("POST", r"mount=", "respond", status=401, times=-1))
    res = push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    assert set(res[0].blobs.values()) == {PushOutcome.UPLOADED}
    d = str(blobs[1].digest)  # type: ignore[attr-defined]
    seq = [
        (e.method, e.status) for e in proxy.log if d in e.target or "/blobs/uploads/" in e.target
    ]
    assert ("POST", 401) in seq
    mounts = proxy.entries("POST", f"mount={d}")
    assert [e.status for e in mounts] == [401]
    assert resolve(f"{proxy.host}/{repo}:v1").digest == root.digest  # type: ignore[attr-defined]


def test_mount_answering_202_uploads_into_that_session(
    plain_registry: Registry, proxy: FaultProxy, store: Store, repo: str
) -> None:
    root, blobs = _first_push(plain_registry, store, repo)
    proxy.add(Rule("POST", r"mount=", "strip_mount", times=-1))
    res = push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    assert set(res[0].blobs.values()) == {PushOutcome.UPLOADED}
    posts = proxy.entries("POST", r"/blobs/uploads/")
    assert len(posts) == len(blobs)  # one POST per blob: the 202 session was used
    assert all(e.status == 202 for e in posts)
    assert resolve(f"{proxy.host}/{repo}:v1").digest == root.digest  # type: ignore[attr-defined]


def test_mount_across_repositories(plain_registry: Registry, store: Store, repo: str) -> None:
    root, blobs = _first_push(plain_registry, store, repo)
    with FaultProxy(plain_registry.host) as p:
        res = push(store.content, root, f"{p.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
        assert set(res[0].blobs.values()) == {PushOutcome.MOUNTED}
        assert p.upload_bytes() == 0
        seq = [(e.method, e.status) for e in p.entries("*", str(blobs[1].digest))]  # type: ignore[attr-defined]
        assert seq == [("HEAD", 404), ("POST", 201)]


def test_retries_exhausted_name_the_blob_and_status(
    proxy: FaultProxy, store: Store, repo: str
) -> None:
    root = random_image(store, 16, sizes=[5000]).manifest
    proxy.add(Rule("POST", r"/blobs/uploads/", "respond", status=503, times=-1))
    with pytest.raises(RegistryError) as ei:
        push(
            store.content,
            root,  # type: ignore[arg-type]
            f"{proxy.host}/{repo}:v1",
            options=opts(retry=RetryPolicy(attempts=3, initial=0.01, max_delay=0.05)),
        )
    text = str(ei.value)
    assert "503" in text and "blob sha256:" in text
    assert ei.value.status == 503 and ei.value.temporary


def test_pull_resumes_a_cut_download_with_range(
    plain_registry: Registry, store: Store, store2: Store, repo: str
) -> None:
    img = random_image(store, 17, sizes=[8 * MiB])
    root, blobs = img.manifest, img.blobs
    push(store.content, root, f"{plain_registry.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    big = blobs[1]
    with FaultProxy(plain_registry.host) as p:
        p.add(Rule("GET", str(big.digest), "cut", after=3 * MiB))  # type: ignore[attr-defined]
        got = pull(f"{p.host}/{repo}:v1", store2.content, options=opts())
        gets = p.entries("GET", str(big.digest))  # type: ignore[attr-defined]
    assert got.digest == root.digest  # type: ignore[attr-defined]
    assert len(gets) == 2
    downloaded = sum(e.received for e in gets)
    assert downloaded == big.size  # type: ignore[attr-defined]  # nothing fetched twice
    info = store2.content.info(Digest(big.digest))  # type: ignore[attr-defined]
    assert info.size == big.size  # type: ignore[attr-defined]
    validate_image(store2.content, got)


def test_redirected_blob_get_carries_no_credentials(
    plain_registry: Registry, proxy: FaultProxy, store: Store, store2: Store, repo: str
) -> None:
    from pallet.remote import Credentials

    root = random_image(store, 18, sizes=[4000]).manifest
    push(store.content, root, f"{plain_registry.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    # the proxy pretends to want Basic auth, and sends blob GETs to "storage" on another origin
    proxy.add(
        Rule(
            "GET",
            r"^/v2/$",
            "respond",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="test"'},
        )
    )
    proxy.add(
        Rule(
            "GET",
            r"/blobs/sha256:[0-9a-f]+$",
            "redirect",
            target=f"localhost:{proxy.port}",
            times=-1,
        )
    )
    o = opts(credentials={proxy.host: Credentials(username="u", password="p")})
    got = pull(f"{proxy.host}/{repo}:v1", store2.content, options=o)
    validate_image(store2.content, got)
    originals = proxy.entries("GET", r"/blobs/sha256:[0-9a-f]+$")
    redirected = proxy.entries("GET", r"redirected=1")
    assert originals and all(e.authorization for e in originals)
    assert redirected and not any(e.authorization for e in redirected)
    assert all(e.host.startswith("localhost:") for e in redirected)


def test_push_again_to_the_same_tag_is_one_head(
    proxy: FaultProxy, store: Store, repo: str, plain_registry: Registry
) -> None:
    """Against the real registry: a second push of what the tag already names asks once and
    sends nothing; a push of another image to that tag does the full push and moves the tag."""
    root = random_image(store, 21, sizes=[300_000, 5000]).manifest
    first = push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    assert set(first[0].blobs.values()) == {PushOutcome.UPLOADED}
    # the tag was asked about once (404); the manifest's PUT does not ask again
    assert [e.status for e in proxy.entries("HEAD", r"/manifests/v1$")] == [404]
    n = len(proxy.log)
    again = push(store.content, root, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    sent = [(e.method, e.target.split("?")[0]) for e in proxy.log[n:]]
    assert sent == [("GET", "/v2/"), ("HEAD", f"/v2/{repo}/manifests/v1")]
    assert set(again[0].blobs.values()) == {PushOutcome.EXISTS} and again[0].bytes_sent == 0
    other = random_image(store, 22, sizes=[4000]).manifest
    puts = len(proxy.entries("PUT", r"/manifests/v1$"))
    heads = len(proxy.entries("HEAD", r"/manifests/v1$"))
    push(store.content, other, f"{proxy.host}/{repo}:v1", options=opts())  # type: ignore[arg-type]
    assert len(proxy.entries("PUT", r"/manifests/v1$")) == puts + 1
    assert len(proxy.entries("HEAD", r"/manifests/v1$")) == heads + 1  # the tag named another
    _check_in_registry(plain_registry, repo, "v1", other)
