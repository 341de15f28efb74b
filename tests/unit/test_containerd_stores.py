"""Image store, lease manager and snapshotter over a real containerd.

The embedded store's image and lease tests (test_metadata.py) run unchanged against containerd:
here the ``db`` fixture is a containerd client, which has the embedded store's ``.content``,
``.images`` and ``.leases``. The garbage-collection tests there drive pallet's own
collector and have containerd counterparts in tests/integration/test_containerd_e2e.py. The
snapshotter test mirrors test_snapshots.py with containerd's ``native`` snapshotter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import test_metadata as embedded

from pallet.containerd import Client
from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.images import Image
from pallet.leases import Resource
from pallet.snapshots import Kind
from support.ctrd import Ctrd, new_namespace
from support.ctrd import client as client  # the fixture
from support.ctrd import ctrd as ctrd  # the fixture


@pytest.fixture
def db(ctrd: Ctrd) -> Iterator[Client]:
    c = ctrd.client(new_namespace("meta"))
    yield c
    c.close()


test_image_create_get_list_update_delete = embedded.test_image_create_get_list_update_delete
test_image_target_validation = embedded.test_image_target_validation
test_leases = embedded.test_leases
test_writes_under_a_lease_are_attached = embedded.test_writes_under_a_lease_are_attached


def test_image_update_replaces_everything_without_fieldpaths(client: Client) -> None:
    t = replace(
        embedded.Descriptor(media_type=embedded.mt.OCI_MANIFEST, digest=embedded.ZERO, size=10),
        annotations={"a": "1"},
    )
    client.images.create(Image(name="r", target=t, labels={"x": "1"}))
    created = client.images.get("r").created_at
    up = client.images.update(Image(name="r", target=replace(t, size=11), labels={"y": "2"}))
    assert (up.target.size, dict(up.labels), up.created_at) == (11, {"y": "2"}, created)
    assert up.target.annotations == {"a": "1"}
    client.images.delete("r", sync=True)
    assert client.images.list() == []


def test_lease_delete_sync_and_expiry_label(client: Client) -> None:
    lease = client.leases.create("exp", {"containerd.io/gc.expire": "2000-01-01T00:00:00Z"})
    assert lease.labels == {"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}
    assert lease.created_at is not None
    # an expired lease is not a root; the daemon's collector deletes it (spec §2.3)
    client.leases.create("trigger")
    client.leases.delete("trigger", sync=True)
    assert [x.id for x in client.leases.list()] == []
    with pytest.raises(InvalidArgument, match="lease id"):
        client.leases.create("")


def _tree(path: str | Path) -> dict[str, tuple[int, bytes | str | None]]:
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, path)
            if os.path.islink(p):
                out[rel] = (st.st_mode, os.readlink(p))
            elif os.path.isfile(p):
                out[rel] = (st.st_mode, Path(p).read_bytes())
            else:
                out[rel] = (st.st_mode, None)
    return out


def test_native_snapshotter_prepare_commit_chain_and_errors(client: Client) -> None:
    """test_snapshots.py's chain test against containerd's ``native`` snapshotter: the active
    snapshot is a directory in the daemon's root, written here directly (same machine, root)."""
    client.leases.create("keep")
    sn = client.with_lease("keep").snapshotter("native")
    m = sn.prepare("k1")
    assert len(m) == 1 and m[0].type == "bind" and "rw" in m[0].options
    d = Path(m[0].as_dir())
    (d / "a").write_text("one")
    os.mkdir(d / "dir")
    os.link(d / "a", d / "dir" / "hard")
    os.symlink("../a", d / "dir" / "sym")
    os.setxattr(d / "a", "user.x", b"1")
    os.utime(d / "a", (1000, 1000))
    with pytest.raises(AlreadyExists):
        sn.prepare("k1")
    sn.commit("base", "k1", labels={"l": "v"})
    with pytest.raises(NotFound):
        sn.stat("k1")
    info = sn.stat("base")
    assert info.kind == Kind.COMMITTED and info.labels == {"l": "v"} and info.parent == ""
    m2 = sn.prepare("k2", "base")
    d2 = Path(m2[0].as_dir())
    assert d2 != d
    assert _tree(d2) == _tree(d)
    assert os.stat(d2 / "a").st_ino == os.stat(d2 / "dir" / "hard").st_ino  # hardlink kept
    assert os.getxattr(d2 / "a", "user.x") == b"1"
    assert os.stat(d2 / "a").st_mtime == 1000
    (d2 / "a").unlink()
    (d2 / "b").write_text("two")
    assert (d / "a").read_text() == "one"  # the parent is untouched
    sn.commit("top", "k2")
    assert sn.stat("top").parent == "base"
    sn.prepare("k3", "base")
    with pytest.raises(AlreadyExists):
        sn.commit("top", "k3")
    with pytest.raises(FailedPrecondition, match="child"):
        sn.remove("base")
    with pytest.raises(NotFound):
        sn.prepare("x", "missing")
    sn.prepare("active-parent")
    with pytest.raises(InvalidArgument, match="not committed"):
        sn.prepare("y", "active-parent")
    v = sn.view("v", "top")
    assert "ro" in v[0].options and _tree(v[0].as_dir()) == _tree(d2)
    with pytest.raises((FailedPrecondition, NotFound)):
        sn.commit("z", "v")
    assert {i.name for i in sn.walk()} == {"base", "top", "k3", "active-parent", "v"}
    assert {i.name for i in sn.walk(["kind==committed"])} == {"base", "top"}
    assert {i.name for i in sn.walk(["parent==base"])} == {"top", "k3"}
    assert sn.stat("v").kind == Kind.VIEW and sn.stat("k3").kind == Kind.ACTIVE
    assert sn.mounts("k3")[0].as_dir() != d2.as_posix()
    u = sn.usage("top")
    assert u.inodes >= 3 and u.size > 0
    upd = sn.update(replace(sn.stat("top"), labels={"n": "1"}), ["labels.n"])
    assert upd.labels == {"n": "1"}
    with pytest.raises(InvalidArgument):
        sn.update(sn.stat("top"), ["parent"])
    assert Resource("snapshots/native", "top") in client.leases.list_resources("keep")
    for k in ("v", "k3", "active-parent"):
        sn.remove(k)
    sn.remove("top")
    sn.remove("base")
    assert list(sn.walk()) == []
    client.leases.delete("keep", sync=True)  # the daemon removes backend snapshots in its GC
    assert not d.exists() and not d2.exists()
