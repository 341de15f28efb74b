"""The snapshotter suite (containerd's ``core/snapshots/testsuite`` in spirit).

A subclass provides one fixture, ``snapshotter``: an empty :class:`pallet.snapshots.Snapshotter`
of the ``native`` kind (plain directories, which the tests write into directly: same machine,
enough privilege), able to keep what it is given (a containerd namespace needs a lease for that).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.snapshots import Kind, Snapshotter

__all__ = ["SnapshotSuite", "tree"]


def tree(path: str | Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Relative path -> (mode, file bytes or link target or None), for comparisons."""
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


class SnapshotSuite:
    """Tests of a native snapshotter; subclasses provide ``snapshotter``."""

    @pytest.fixture
    def snapshotter(self) -> Snapshotter:
        raise NotImplementedError("a SnapshotSuite subclass provides the snapshotter fixture")

    def test_prepare_commit_chain_and_errors(self, snapshotter: Snapshotter) -> None:
        sn = snapshotter
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
        assert tree(d2) == tree(d)
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
        assert "ro" in v[0].options and tree(v[0].as_dir()) == tree(d2)
        names = {i.name for i in sn.walk()}
        assert names == {"base", "top", "k3", "active-parent", "v"}
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
        for k in ("v", "k3", "active-parent"):
            sn.remove(k)
        sn.remove("top")
        sn.remove("base")
        assert list(sn.walk()) == []

    def test_a_committed_snapshot_has_no_mounts(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("k")
        snapshotter.commit("c", "k")
        with pytest.raises(FailedPrecondition):
            snapshotter.mounts("c")

    def test_a_view_cannot_be_committed(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("k")
        snapshotter.commit("c", "k")
        snapshotter.view("v", "c")
        with pytest.raises(FailedPrecondition):
            snapshotter.commit("z", "v")
