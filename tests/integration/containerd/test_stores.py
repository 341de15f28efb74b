"""Image store, lease manager and snapshotter over a real containerd.

The image, lease and snapshotter suites (tests/support/conformance/) run here against the
containerd client, each test in a fresh namespace of the session's private daemon; the embedded
store runs them in tests/unit/test_metadata.py and tests/unit/test_snapshots.py. The garbage
collection tests of the embedded store drive pallet's own collector and have containerd
counterparts in tests/integration/test_containerd_e2e.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pallet.containerd import Client
from pallet.containerd.snapshots import ContainerdSnapshotter
from pallet.leases import Resource
from pallet.snapshots import Snapshotter
from support.conformance.metadata import ImageSuite, LeaseSuite
from support.conformance.snapshots import SnapshotSuite
from support.containerd import Containerd, new_namespace


class TestContainerd(ImageSuite, LeaseSuite):
    @pytest.fixture
    def store(self, ctrd: Containerd) -> Iterator[Client]:
        c = ctrd.client(new_namespace("meta"))
        yield c
        c.close()


class TestContainerdSnapshots(SnapshotSuite):
    @pytest.fixture
    def snapshotter(self, client: Client) -> ContainerdSnapshotter:
        """containerd's ``native`` snapshotter; its snapshots are leased, as the daemon collects
        unreferenced ones at any time."""
        client.leases.create("keep")
        return client.with_lease("keep").snapshotter("native")

    def test_prepare_commit_chain_and_errors(
        self, snapshotter: Snapshotter, client: Client, ctrd: Containerd
    ) -> None:
        native = ctrd.root / "io.containerd.snapshotter.v1.native" / "snapshots"
        before = set(os.listdir(native)) if native.exists() else set()
        super().test_prepare_commit_chain_and_errors(snapshotter)
        client.leases.delete("keep", sync=True)  # the daemon removes backend snapshots in its GC
        assert set(os.listdir(native)) - before == set()  # none of this test's directories left

    def test_snapshots_are_leased(self, snapshotter: Snapshotter, client: Client) -> None:
        snapshotter.prepare("k1")
        snapshotter.commit("top", "k1")
        snapshotter.prepare("k2", "top")
        assert client.leases.list_resources("keep") == [
            Resource("snapshots/native", "k2"),
            Resource("snapshots/native", "top"),
        ]
