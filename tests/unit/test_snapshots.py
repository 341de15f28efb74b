"""Native snapshotter conformance (containerd's snapshot testsuite in spirit), on the real store."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.leases import temporary
from pallet.metadata.store import Store
from pallet.snapshots import Kind
from support.store import put


def tree(path: str | Path) -> dict[str, tuple[int, bytes | str | None]]:
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


def test_prepare_commit_chain_and_errors(db: Store) -> None:
    sn = db.snapshotter()
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
    with pytest.raises(FailedPrecondition):
        sn.mounts("base")
    m2 = sn.prepare("k2", "base")
    d2 = Path(m2[0].as_dir())
    assert d2 != d
    assert tree(d2) == tree(d)
    assert os.stat(d2 / "a").st_ino == os.stat(d2 / "dir" / "hard").st_ino  # hardlink kept
    assert os.getxattr(d2 / "a", "user.x") == b"1"
    assert os.stat(d2 / "a").st_mtime == 1000
    (d2 / "a").unlink()
    (d2 / "b").write_text("two")
    assert (d / "a").read_text() == "one"  # the parent is untouched
    sn.commit("top", "k2")
    assert sn.stat("top").parent == "base"
    with pytest.raises(AlreadyExists):
        sn.prepare("k3", "base") and sn.commit("top", "k3")
    with pytest.raises(FailedPrecondition, match="children"):
        sn.remove("base")
    with pytest.raises(NotFound):
        sn.prepare("x", "missing")
    sn.prepare("active-parent")
    with pytest.raises(InvalidArgument, match="not committed"):
        sn.prepare("y", "active-parent")
    v = sn.view("v", "top")
    assert "ro" in v[0].options and tree(v[0].as_dir()) == tree(d2)
    with pytest.raises(FailedPrecondition):
        sn.commit("z", "v")
    names = {i.name for i in sn.walk()}
    assert names == {"base", "top", "k3", "active-parent", "v"}
    assert {i.name for i in sn.walk(["kind==committed"])} == {"base", "top"}
    assert {i.name for i in sn.walk(["parent==base"])} == {"top", "k3"}
    u = sn.usage("top")
    assert u.inodes >= 3 and u.size > 0
    upd = sn.update(replace(sn.stat("top"), labels={"n": "1"}), ["labels.n"])
    assert upd.labels == {"n": "1"}
    with pytest.raises(InvalidArgument):
        sn.update(sn.stat("top"), ["parent"])
    for k in ("v", "k3", "active-parent"):
        sn.remove(k)
    sn.remove("top")
    sn.remove("base")
    assert list(sn.walk()) == []
    assert list(sn.root.iterdir()) == []


def test_commit_dir_does_not_copy(db: Store, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "big").write_bytes(b"x" * 100_000)
    sn = db.snapshotter()
    sn.commit_dir("mine", user)
    assert sn.path("mine") == str(user.resolve())
    assert list(sn.root.iterdir()) == []  # nothing copied into the store
    m = sn.prepare("child", "mine")  # a child is a copy, as any prepare
    assert (Path(m[0].as_dir()) / "big").read_bytes() == b"x" * 100_000
    sn.remove("child")
    sn.remove("mine")
    assert (user / "big").exists()  # never deleted
    with pytest.raises(InvalidArgument, match="not a directory"):
        sn.commit_dir("bad", tmp_path / "nope")


def test_gc_collects_snapshots_by_labels_and_leases(db: Store) -> None:
    sn = db.snapshotter()
    with temporary(db.leases) as lid:
        sn.prepare("a", lease=lid)
        sn.commit("sha256:base", "a", lease=lid)
        sn.prepare("b", "sha256:base", lease=lid)
        sn.commit("sha256:top", "b", lease=lid)
        sn.prepare("loose")  # neither leased nor referenced: garbage, as in containerd
        db.collect()
        assert {i.name for i in sn.walk()} == {"sha256:base", "sha256:top"}
        # a config blob labelled with the top snapshot keeps the chain alive after the lease
        cfg = put(
            db,
            b"{}",
            labels={
                "containerd.io/gc.ref.snapshot.native": "sha256:top",
                "containerd.io/gc.root": "1",
            },
        )
    db.collect()
    assert {i.name for i in sn.walk()} == {"sha256:base", "sha256:top"}
    assert len(list(sn.root.iterdir())) == 2
    info = db.content.info(cfg.digest)
    db.content.update(replace(info, labels={}), ["labels.containerd.io/gc.root"])
    st = db.collect()
    assert list(sn.walk()) == [] and list(sn.root.iterdir()) == []
    assert st.snapshots == ["native/sha256:top", "native/sha256:base"]
