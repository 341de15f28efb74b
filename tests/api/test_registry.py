"""``Store.push``, ``Store.pull``, ``Store.login`` and ``Store.logout`` through the public API
only, against the session's real registries (tests/conftest.py)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

import pallet
from support.containerd import Containerd, new_namespace
from support.images import BuiltImage, Interop, tree_state
from support.registry import Registry


def _save(store: pallet.Store, name: str, platform: str | None = None) -> bytes:
    buf = io.BytesIO()
    store.save([name], buf, platform=platform)
    return buf.getvalue()


def _built(interop: Interop, key: str, platform: str) -> BuiltImage:
    return next(i for i in interop.built[key] if str(i.platform) == platform)


def test_push_then_pull_into_a_second_store(
    interop: Interop, plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    dest = f"{plain_registry.host}/{repo}:v1"
    root = interop.roots["multi"]
    events: list[pallet.Progress] = []
    with pallet.Store(root=tmp_path / "a") as a:
        # the archive's image, named for the registry too
        a.load(interop.archive("multi"), tag=dest)
        assert a.push(interop.name("multi"), dest, progress=events.append) == root.digest
        # pushed again under its own name: nothing to upload, the same digest
        assert a.push(dest) == root.digest
        want = _save(a, dest, "linux/arm64")
    done = [e for e in events if e.done]
    assert done and not [e for e in events if e.error]
    assert {e.parent for e in done if e.parent} == {
        "pushing layers",
        f"pushing manifest for {dest}",
    }

    with pallet.Store(root=tmp_path / "b") as b:
        image = b.pull(dest, platform="linux/arm64", progress=events.append)
        assert (image.name, image.digest, image.media_type) == (dest, root.digest, root.media_type)
        assert image.root_size == root.size
        # the index, the arm64 image and the amd64 image's descriptor size (not pulled)
        arm, amd = (_built(interop, "multi", p) for p in ("linux/arm64", "linux/amd64"))
        assert image.size == root.size + amd.manifest.size + sum(
            d.size for d in (arm.manifest, *arm.blobs)
        )
        # what the second store holds is the first's, byte for byte
        assert _save(b, dest, "linux/arm64") == want
        res = b.unpack(dest, tmp_path / "rootfs", platform="linux/arm64")
    assert res.digest == arm.manifest.digest
    assert tree_state(tmp_path / "rootfs") == tree_state(interop.expected["linux/arm64"])


def test_push_by_digest_and_pull_by_digest(
    interop: Interop, plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    root = interop.roots["oci"]
    untagged = f"{plain_registry.host}/{repo}"
    with pallet.Store(root=tmp_path / "a") as a:
        a.load(interop.archive("oci"))
        with pytest.raises(pallet.InvalidArgument, match=f"{untagged}:v1 by digest"):
            a.push(interop.name("oci"), f"{untagged}:v1", by_digest=True)
        assert a.push(interop.name("oci"), untagged, by_digest=True) == root.digest
        # without a destination, the image's own name is pushed by digest (its tag dropped)
        a.tag(interop.name("oci"), f"{untagged}:v2")
        assert a.push(f"{untagged}:v2", by_digest=True) == root.digest
    with pallet.Store(root=tmp_path / "b") as b:
        image = b.pull(f"{untagged}@{root.digest}")
        assert (image.name, image.digest) == (f"{untagged}@{root.digest}", root.digest)
        # no tag was written
        with pytest.raises(pallet.NotFound, match=f"{repo}:latest"):
            b.pull(untagged)


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_login_then_push_logout(
    interop: Interop,
    tls_registry: Registry,
    token_registry: Registry,
    repo: str,
    tmp_path: Path,
    kind: str,
) -> None:
    reg = tls_registry if kind == "tls" else token_registry
    ca = reg.tls.ca_cert if reg.tls else None
    user, password = next(iter(reg.users.items()))
    dest = f"{reg.host}/{repo}:v1"
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    with pallet.Store(root=tmp_path / "a") as a:
        a.load(interop.archive("oci"))
        # no credentials yet: the registry refuses, and says which image
        with pytest.raises(pallet.Error, match=repo):
            a.push(interop.name("oci"), dest, ca_file=ca)
        with pytest.raises(pallet.Error) as refused:
            a.login(reg.host, user, "wrong-" + password, ca_file=ca)
        assert password not in str(refused.value) and "wrong-" not in str(refused.value)
        assert not config.exists()  # nothing stored when the registry refuses

        assert a.login(reg.host, user, password, ca_file=ca) == str(config)
        assert reg.host in json.loads(config.read_text())["auths"]
        assert a.push(interop.name("oci"), dest, ca_file=ca) == interop.roots["oci"].digest

    # credentials are the user's, not a store's: a second store pulls with them
    with pallet.Store(root=tmp_path / "b") as b:
        assert b.pull(dest, ca_file=ca).digest == interop.roots["oci"].digest
    assert pallet.Store.logout(reg.host) is True
    assert pallet.Store.logout(reg.host) is False
    assert reg.host not in json.loads(config.read_text()).get("auths", {})


def test_bad_input_names_the_value(plain_registry: Registry, tmp_path: Path) -> None:
    with pallet.Store(root=tmp_path / "s") as s:
        with pytest.raises(pallet.NotFound, match="image example.com/none:1"):
            s.push("example.com/none:1", f"{plain_registry.host}/x:1")
        with pytest.raises(pallet.InvalidArgument, match="UPPER/Case"):
            s.pull("UPPER/Case")
        with pytest.raises(pallet.InvalidArgument, match="jobs 0"):
            s.pull(f"{plain_registry.host}/x:1", jobs=0)
        with pytest.raises(pallet.InvalidArgument, match="platform 'amd64'"):
            s.pull(f"{plain_registry.host}/x:1", platform="amd64")
        with pytest.raises(pallet.NotFound, match="test/absent:1"):
            s.pull(f"{plain_registry.host}/test/absent:1")
        with pytest.raises(pallet.InvalidArgument, match="password"):
            s.login(plain_registry.host, "me", "")


def test_push_from_containerd(
    ctrd: Containerd, interop: Interop, plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    """A containerd store pushes and pulls as the embedded one does, and creates no embedded
    store for it."""
    dest = f"{plain_registry.host}/{repo}:v1"
    root = interop.roots["multi"]
    with pallet.Store.containerd(ctrd.socket, new_namespace("api-push")) as s:
        s.load(interop.archive("multi"))
        assert s.push(interop.name("multi"), dest) == root.digest
    with pallet.Store.containerd(ctrd.socket, new_namespace("api-pull")) as s:
        image = s.pull(dest, platform="linux/amd64")
        assert (image.name, image.digest) == (dest, root.digest)
        s.unpack(dest, tmp_path / "rootfs", platform="linux/amd64")
    assert tree_state(tmp_path / "rootfs") == tree_state(interop.expected["linux/amd64"])
    assert not (tmp_path / "xdg").exists()
