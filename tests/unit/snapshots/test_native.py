"""The native snapshotter on the real store: the snapshotter suite, directories committed in place,
and garbage collection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pallet.errors import InvalidArgument
from pallet.leases import temporary
from pallet.metadata.store import Store
from pallet.snapshots import Snapshotter
from pallet.snapshots.native import NativeSnapshotter
from support.conformance.snapshots import SnapshotSuite
from support.images import put


class TestNative(SnapshotSuite):
    """The snapshotter suite (tests/support/conformance/snapshots.py) on the embedded native
    snapshotter; tests/unit/test_containerd_stores.py runs it against containerd's."""

    @pytest.fixture
    def snapshotter(self, db: Store) -> NativeSnapshotter:
        return db.snapshotter()

    def test_prepare_commit_chain_and_errors(self, snapshotter: Snapshotter) -> None:
        super().test_prepare_commit_chain_and_errors(snapshotter)
        assert list(snapshotter.root.iterdir()) == []  # removing frees the directories at once


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
