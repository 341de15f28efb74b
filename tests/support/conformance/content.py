"""The content-store suite (containerd's ``core/content/testsuite`` in spirit).

A subclass provides two fixtures: ``store``, the :class:`pallet.content.Store` under test (empty,
and able to keep what it is given: a containerd namespace needs a lease for that), and
``content_root``, the local directory where that store keeps committed blobs as
``blobs/<algorithm>/<hex>`` (containerd's local layout, which pallet's embedded store shares).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.content import Store
from pallet.errors import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from pallet.oci.digest import Digest

__all__ = ["ContentSuite", "sha", "write"]


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def write(store: Store, ref: str, data: bytes, **kw: object) -> Digest:
    with store.writer(ref) as w:
        w.write(data)
        return w.commit(len(data), sha(data), **kw)  # type: ignore[arg-type]


def assert_ref_held(store: Store, ref: str) -> None:
    """A second writer on ``ref``, in this thread or another, gets ``Unavailable``."""
    with pytest.raises(Unavailable, match=ref):
        store.writer(ref)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            store.writer(ref)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], Unavailable)


class ContentSuite:
    """Tests of a content store; subclasses provide ``store`` and ``content_root``."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a ContentSuite subclass provides the store fixture")

    @pytest.fixture
    def content_root(self) -> Path:
        raise NotImplementedError("a ContentSuite subclass provides the content_root fixture")

    def test_write_commit_read(self, store: Store, content_root: Path) -> None:
        data = os.urandom(300_000)
        d = write(store, "ref-1", data)
        assert d == sha(data)
        with store.open(d) as f:
            assert f.read() == data
        path = content_root / "blobs" / "sha256" / d.hex
        assert path.read_bytes() == data
        assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        info = store.info(d)
        assert info.size == len(data) and info.digest == d
        assert store.read_at(d, 1000, 10) == data[1000:1010]
        assert store.list_statuses() == []  # ingest gone

    def test_small_and_empty_blob(self, store: Store) -> None:
        d = write(store, "empty", b"")
        assert d == sha(b"")
        assert store.info(d).size == 0

    def test_commit_existing_is_already_exists(self, store: Store) -> None:
        data = b"same bytes"
        write(store, "a", data)
        with store.writer("b") as w:
            w.write(data)
            with pytest.raises(AlreadyExists):
                w.commit(len(data), sha(data))
        with pytest.raises(NotFound):
            store.status("b")  # ingest removed
        # an expected digest that exists fails at open
        with pytest.raises(AlreadyExists):
            store.writer("c", expected=sha(data))

    def test_size_mismatch_keeps_ingest(self, store: Store) -> None:
        with store.writer("mm") as w:
            w.write(b"abc")
            with pytest.raises(DigestMismatch, match="size"):
                w.commit(4)
        st = store.status("mm")
        assert st.offset == 3
        with store.writer("mm") as w:
            with pytest.raises(DigestMismatch, match="digest"):
                w.commit(3, sha(b"xyz"))
        assert store.status("mm").offset == 3
        assert isinstance(DigestMismatch("x"), FailedPrecondition)
        store.abort("mm")
        with pytest.raises(NotFound):
            store.status("mm")
        with pytest.raises(NotFound):
            store.abort("mm")

    def test_resume_rehashes(self, store: Store) -> None:
        data = os.urandom(3 << 20)
        w = store.writer("resume", total=len(data), expected=sha(data))
        w.write(data[: 1 << 20])
        w.close()
        st = store.status("resume")
        assert (st.offset, st.total, st.expected) == (1 << 20, len(data), sha(data))
        with store.writer("resume") as w2:
            assert w2.offset == 1 << 20
            w2.write(data[w2.offset :])
            assert w2.commit(len(data)) == sha(data)
        with store.open(sha(data)) as f:
            assert f.read() == data

    def test_resume_rejects_other_total(self, store: Store) -> None:
        w = store.writer("t", total=10)
        w.write(b"12345")
        w.close()
        with pytest.raises(InvalidArgument, match="total"):
            store.writer("t", total=11)

    def test_truncate_restarts(self, store: Store) -> None:
        with store.writer("tr") as w:
            w.write(b"garbage")
            w.truncate(0)
            w.write(b"good")
            assert w.commit(4, sha(b"good")) == sha(b"good")
            with pytest.raises(FailedPrecondition):
                w.write(b"more")

    def test_one_writer_per_ref_threads(self, store: Store) -> None:
        w = store.writer("busy")
        try:
            assert_ref_held(store, "busy")
            with pytest.raises(Unavailable):
                store.abort("busy")
        finally:
            w.close()
        store.writer("busy").close()  # free again after close

    def test_concurrent_writers_on_one_ref_one_wins(self, store: Store) -> None:
        data = os.urandom(1 << 20)
        results: list[str] = []
        lock = threading.Lock()

        def go() -> None:
            try:
                with store.writer("race") as w:
                    w.write(data[w.offset :])
                    w.commit(len(data), sha(data))
                r = "ok"
            except (Unavailable, AlreadyExists) as exc:
                r = type(exc).__name__
            with lock:
                results.append(r)

        ts = [threading.Thread(target=go) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert "ok" in results
        with store.open(sha(data)) as f:
            assert f.read() == data

    def test_labels_update_by_fieldpath(self, store: Store) -> None:
        d = write(store, "l", b"label me", labels={"a": "1", "b": "2"})
        assert store.info(d).labels == {"a": "1", "b": "2"}
        info = store.info(d)
        out = store.update(replace(info, labels={"b": "", "c": "3"}), ["labels.b", "labels.c"])
        assert out.labels == {"a": "1", "c": "3"}
        out = store.update(replace(info, labels={"x": "y"}), ["labels"])
        assert out.labels == {"x": "y"}
        out = store.update(replace(info, labels={"z": "1", "e": ""}))
        assert out.labels == {"z": "1"}
        with pytest.raises(InvalidArgument, match="size"):
            store.update(replace(info, labels={"k": "v" * 4096}), ["labels.k"])
        with pytest.raises(InvalidArgument, match="field path"):
            store.update(info, ["size"])
        assert store.info(d).labels == {"z": "1"}
        assert store.info(d).updated_at >= store.info(d).created_at

    def test_walk_filters(self, store: Store) -> None:
        a = write(store, "a", b"aaa", labels={"kind": "x", "dotted.key": "1"})
        b = write(store, "b", b"bbb", labels={"kind": "y"})
        c = write(store, "c", b"ccc")
        assert {i.digest for i in store.walk()} == {a, b, c}
        assert [i.digest for i in store.walk(["labels.kind==x"])] == [a]
        assert [i.digest for i in store.walk(['labels."dotted.key"'])] == [a]
        assert {i.digest for i in store.walk(["labels.kind"])} == {a, b}
        assert {i.digest for i in store.walk(["labels.kind!=x"])} == {b, c}
        assert [i.digest for i in store.walk([f"digest~=^{b[:12]}"])] == [b]
        assert {i.digest for i in store.walk(["labels.kind==x", "labels.kind==y"])} == {a, b}
        with pytest.raises(InvalidArgument, match="filter"):
            list(store.walk(['labels."unterminated']))

    def test_delete(self, store: Store) -> None:
        d = write(store, "del", b"bye")
        store.delete(d)
        with pytest.raises(NotFound):
            store.info(d)
        with pytest.raises(NotFound):
            store.open(d)
        with pytest.raises(NotFound):
            store.delete(d)

    def test_list_statuses_filters(self, store: Store) -> None:
        for ref in ("probe-1", "probe-2", "other"):
            w = store.writer(ref)
            w.write(b"x")
            w.close()
        assert sorted(s.ref for s in store.list_statuses()) == ["other", "probe-1", "probe-2"]
        assert sorted(s.ref for s in store.list_statuses(['ref~="probe"'])) == [
            "probe-1",
            "probe-2",
        ]
        assert store.status("other").offset == 1

    def test_invalid_inputs(self, store: Store) -> None:
        with pytest.raises(InvalidArgument, match="ref"):
            store.writer("")
        with pytest.raises(InvalidArgument, match="sha256:abc"):
            store.info(Digest("sha256:abc"))
        with pytest.raises(InvalidArgument, match="md5"):
            Digest.parse("md5:" + "0" * 32)

    def test_sha512_digests_accepted(self, store: Store, content_root: Path) -> None:
        data = b"sha512 content"
        d512 = Digest.parse("sha512:" + hashlib.sha512(data).hexdigest())
        with store.writer("s512", expected=d512) as w:
            w.write(data)
            assert w.commit(len(data)) == d512
        assert store.info(d512).size == len(data)
        assert (content_root / "blobs" / "sha512" / d512.hex).read_bytes() == data
        # expected given only at commit: the store re-hashes with that algorithm
        other = b"late sha512"
        d2 = Digest.parse("sha512:" + hashlib.sha512(other).hexdigest())
        with store.writer("late") as w:
            w.write(other)
            assert w.commit(len(other), d2) == d2
