"""The content-store suite (tests/support/conformance/content.py) against a real containerd.

Every suite test runs here with a ``store`` backed by the session's private daemon, one fresh
namespace per test; ``content_root`` is the daemon's own content directory (the daemon is local,
so the read-only blob files can be checked too).

Three suite tests check behaviour that containerd 1.6 itself does not have: they are overridden
below as strict expected failures, with the reason, and a test next to each pins what containerd
does instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.containerd import Client
from pallet.containerd.content import ContainerdContentStore
from pallet.errors import AlreadyExists, DigestMismatch, NotFound
from pallet.leases import Resource
from pallet.oci.digest import Digest
from support.conformance.content import ContentSuite, assert_ref_held, sha
from support.containerd import Containerd, new_namespace


class TestContainerd(ContentSuite):
    @pytest.fixture
    def store(self, ctrd: Containerd) -> Iterator[ContainerdContentStore]:
        """A namespace whose writes are leased: containerd collects unreferenced blobs at any
        time (the embedded store only on ``gc``), so the suite's blobs need a root to stay."""
        c = ctrd.client(new_namespace("conf"))
        c.leases.create("suite")
        yield c.with_lease("suite").content
        c.close()

    @pytest.fixture
    def content_root(self, ctrd: Containerd) -> Path:
        return ctrd.content_root

    # -- the differences: the suite's expectation fails here, on purpose -------------------------
    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="containerd's Status does not report the expected digest of an interrupted ingest "
        "(the daemon does not record it); resumption itself works: "
        "test_resume_rehashes_without_expected_in_status",
    )
    def test_resume_rehashes(self, store: ContainerdContentStore) -> None:
        super().test_resume_rehashes(store)

    @pytest.mark.xfail(
        strict=True,
        raises=pytest.fail.Exception,
        reason="containerd's Abort removes an ingest without taking the ref lock, so it does not "
        "fail while a writer holds the ref; the rest holds: test_one_writer_per_ref_abort_unlocked",
    )
    def test_one_writer_per_ref_threads(self, store: ContainerdContentStore) -> None:
        super().test_one_writer_per_ref_threads(store)

    @pytest.mark.xfail(
        strict=True,
        raises=DigestMismatch,
        reason="containerd 1.6's content store hashes every ingest with sha256, so a sha512 "
        "expected digest fails at commit: test_sha512_expected_fails_at_commit",
    )
    def test_sha512_digests_accepted(
        self, store: ContainerdContentStore, content_root: Path
    ) -> None:
        super().test_sha512_digests_accepted(store, content_root)

    # -- what containerd does where the suite expects otherwise ------------------------------
    def test_resume_rehashes_without_expected_in_status(
        self, store: ContainerdContentStore
    ) -> None:
        data = os.urandom(3 << 20)
        w = store.writer("resume", total=len(data), expected=sha(data))
        w.write(data[: 1 << 20])
        w.close()
        st = store.status("resume")
        assert (st.offset, st.total, st.expected) == (1 << 20, len(data), None)
        with store.writer("resume") as w2:
            assert w2.offset == 1 << 20
            assert w2.digest() == sha(data[: 1 << 20])  # the daemon re-hashed what it had
            w2.write(data[w2.offset :])
            assert w2.commit(len(data)) == sha(data)
        with store.open(sha(data)) as f:
            assert f.read() == data

    def test_one_writer_per_ref_abort_unlocked(self, store: ContainerdContentStore) -> None:
        w = store.writer("busy")
        try:
            assert_ref_held(store, "busy")
            store.abort("busy")  # containerd: no lock taken, the ingest record goes
            with pytest.raises(NotFound):
                store.status("busy")
        finally:
            w.close()
        store.writer("busy").close()  # free again after close

    def test_sha512_expected_fails_at_commit(self, store: ContainerdContentStore) -> None:
        data = b"sha512 content"
        d512 = Digest.parse("sha512:" + hashlib.sha512(data).hexdigest())
        with store.writer("s512", expected=d512) as w:
            w.write(data)
            with pytest.raises(DigestMismatch, match="unexpected commit digest"):
                w.commit(len(data))
        store.abort("s512")

    # -- containerd-specific content behaviour ------------------------------------------------
    def test_large_blob_in_odd_writes_and_random_reads(self, store: ContainerdContentStore) -> None:
        data = os.urandom((5 << 20) + 12345)
        with store.writer("big", total=len(data)) as w:
            i = 0
            for step in (1, 100, 1 << 20, 3 << 20, 7, 65536):
                w.write(data[i : i + step])
                i += step
            w.write(memoryview(data)[i:])
            assert w.offset == len(data)
            st = w.status()
            assert (st.offset, st.total) == (len(data), len(data))
            d = w.commit(len(data), sha(data), labels={"k": "v"})
        assert d == sha(data)
        assert store.info(d).labels == {"k": "v"}
        with store.open(d) as f:
            f.seek(4 << 20)
            assert f.read(10) == data[4 << 20 : (4 << 20) + 10]
            f.seek(3)
            assert f.read(5) == data[3:8]
            f.seek(-100, os.SEEK_END)
            assert f.read() == data[-100:]
            assert f.read() == b""
        assert store.read_at(d, (5 << 20) - 3, 10) == data[(5 << 20) - 3 : (5 << 20) + 7]

    def test_other_namespace_does_not_see_blob_and_shares_it_without_data(
        self, client: Client
    ) -> None:
        data = os.urandom(300_000)
        client.leases.create("keep")
        with client.content.writer("a", expected=sha(data), lease="keep") as w:
            w.write(data)
            w.commit(len(data))
        other = client.with_namespace(new_namespace())
        other.leases.create("keep")
        other = other.with_lease("keep")
        with pytest.raises(NotFound):
            other.content.info(sha(data))
        # shared content policy: the bytes are in the daemon already, the writer starts at the end
        with other.content.writer("b", total=len(data), expected=sha(data)) as w:
            assert w.offset == len(data)
            assert w.commit(len(data), sha(data)) == sha(data)
        assert other.content.info(sha(data)).size == len(data)

    def test_writes_under_a_lease_are_attached(self, client: Client) -> None:
        lid = "lease-" + new_namespace()
        client.leases.create(lid)
        w = client.content.writer("leased", lease=lid)
        w.write(b"leased bytes")
        assert Resource("ingests", "leased") in client.leases.list_resources(lid)
        d = w.commit()
        assert client.leases.list_resources(lid) == [Resource("content", d)]
        # a collision found at commit is leased too, and gets the commit's labels (pallet semantics)
        lid2 = "lease2-" + new_namespace()
        client.leases.create(lid2)
        with client.content.writer("again", lease=lid2) as w:
            w.write(b"leased bytes")
            with pytest.raises(AlreadyExists):
                w.commit(labels={"added": "yes"})
        assert client.leases.list_resources(lid2) == [Resource("content", d)]
        assert client.content.info(d).labels == {"added": "yes"}
        # an expected digest that exists: AlreadyExists at open, and the lease holds it
        lid3 = "lease3-" + new_namespace()
        client.leases.create(lid3)
        with pytest.raises(AlreadyExists):
            client.content.writer("third", expected=d, lease=lid3)
        assert client.leases.list_resources(lid3) == [Resource("content", d)]
        with pytest.raises(NotFound, match="lease"):
            client.content.writer("x", lease="no-such-lease")

    def test_digest_and_status_mid_write(self, store: ContainerdContentStore) -> None:
        with store.writer("mid", total=6) as w:
            w.write(b"abc")
            assert w.digest() == sha(b"abc")
            st = w.status()
            assert (st.ref, st.offset, st.total) == ("mid", 3, 6)
            w.write(b"def")
            assert w.commit(6) == sha(b"abcdef")

    def test_an_abandoned_writer_frees_its_ref(self, store: ContainerdContentStore) -> None:
        import gc

        w = store.writer("dropped")
        w.write(b"partial")
        w.status()  # the daemon has the bytes
        del w
        gc.collect()
        with store.writer("dropped") as w2:  # the stream was ended: the ref lock is free again
            assert w2.offset == len(b"partial")
