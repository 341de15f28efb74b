"""Image store, lease manager and garbage collection on the real SQLite-backed store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pallet.errors import NotFound
from pallet.images import Image
from pallet.leases import temporary
from pallet.metadata.store import Store
from pallet.oci.digest import Digest
from support.conformance.metadata import ImageSuite, LeaseSuite
from support.images import graph, put, random_image


def exists(db: Store, d: str) -> bool:
    return db.content.blob_path(Digest(d)).exists()


class TestEmbedded(ImageSuite, LeaseSuite):
    """The image and lease suites (tests/support/conformance/metadata.py) on the embedded
    store; tests/unit/test_containerd_stores.py runs them against containerd."""

    @pytest.fixture
    def store(self, db: Store) -> Store:
        return db


# ---------------------------------------------------------------- garbage collection
def test_gc_unreferenced_blob_goes(db: Store) -> None:
    d = put(db, b"orphan")
    st = db.collect()
    assert st.blobs == [d.digest] and not exists(db, d.digest)
    with pytest.raises(NotFound):
        db.content.info(d.digest)


def test_gc_lease_protects_and_expired_does_not(db: Store) -> None:
    db.leases.create("live")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    db.leases.create("old", {"containerd.io/gc.expire": past})
    a = put(db, b"kept by live", lease="live")
    b = put(db, b"in expired", lease="old")
    st = db.collect()
    assert exists(db, a.digest) and not exists(db, b.digest)
    assert st.leases == ["old"]
    assert [x.id for x in db.leases.list()] == ["live"]
    db.leases.delete("live", sync=True)
    assert not exists(db, a.digest)


def test_gc_image_keeps_graph_and_delete_frees_it(db: Store) -> None:
    with temporary(db.leases) as lid:
        m = random_image(db, 1, sizes=[1000] * 3, lease=lid).manifest
        db.images.create(Image(name="img", target=m))
    g = graph(db, m)
    assert len(g) == 5
    put(db, b"garbage")
    db.collect()
    assert all(exists(db, d) for d in g)
    assert {str(i.digest) for i in db.content.walk()} == g
    db.images.delete("img", sync=True)
    assert list(db.content.walk()) == [] and list(db.content.digests()) == []


def test_gc_shared_blob_survives_deleting_one_image(db: Store) -> None:
    shared = b"shared layer bytes" * 100
    with temporary(db.leases) as lid:
        m1 = random_image(db, 1, lease=lid, shared=[shared]).manifest
        m2 = random_image(db, 2, lease=lid, shared=[shared]).manifest
        db.images.create(Image(name="one", target=m1))
        db.images.create(Image(name="two", target=m2))
    g1, g2 = graph(db, m1), graph(db, m2)
    common = g1 & g2
    assert len(common) == 1
    db.images.delete("one", sync=True)
    assert all(exists(db, d) for d in g2)
    assert not any(exists(db, d) for d in g1 - g2)


def test_gc_chained_refs_and_root_label(db: Store) -> None:
    c = put(db, b"leaf")
    b = put(db, b"middle", labels={"containerd.io/gc.ref.content.x": c.digest})
    a = put(
        db,
        b"top",
        labels={"containerd.io/gc.ref.content/other": b.digest, "containerd.io/gc.root": "yes"},
    )
    lone = put(db, b"lone")
    db.collect()
    assert all(exists(db, d.digest) for d in (a, b, c)) and not exists(db, lone.digest)
    # dropping the root label lets the whole chain go
    info = db.content.info(a.digest)
    db.content.update(replace(info, labels={}), ["labels.containerd.io/gc.root"])
    db.collect()
    assert not any(exists(db, d.digest) for d in (a, b, c))


def test_gc_flat_lease_does_not_follow_refs(db: Store) -> None:
    db.leases.create("flat", {"containerd.io/gc.flat": "1"})
    child = put(db, b"child")
    parent = put(
        db, b"parent", lease="flat", labels={"containerd.io/gc.ref.content.c": child.digest}
    )
    db.collect()
    assert exists(db, parent.digest) and not exists(db, child.digest)


def test_gc_image_label_refs_are_roots(db: Store) -> None:
    extra = put(db, b"referenced by the image record")
    m = random_image(db, 3).manifest
    db.images.create(
        Image(name="x", target=m, labels={"containerd.io/gc.ref.content.extra": extra.digest})
    )
    db.collect()
    assert exists(db, extra.digest) and exists(db, m.digest)


def test_gc_recent_ingest_kept_old_ingest_removed(db: Store) -> None:
    w = db.content.writer("young")
    w.write(b"partial")
    w.close()
    db.collect()
    assert db.content.status("young").offset == 7
    db.collect(now=datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(NotFound):
        db.content.status("young")


def test_gc_dry_run_removes_nothing(db: Store) -> None:
    d = put(db, b"would go")
    st = db.collect(dry_run=True)
    assert st.blobs == [d.digest] and exists(db, d.digest)


def test_database_close_closes_every_threads_connection(tmp_path: Path) -> None:
    """close() reaches the connections other threads opened (check_same_thread=False), and a
    later use opens a new one."""
    import sqlite3
    import threading

    from pallet.metadata._sqlite import Database

    db = Database(tmp_path / "m.db", lock_path=tmp_path / "gc.lock")
    conns: list[sqlite3.Connection] = []

    def use() -> None:
        with db.read() as c:
            conns.append(c)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    with db.read() as mine:
        pass
    db.close()
    for c in (*conns, mine):
        with pytest.raises(sqlite3.ProgrammingError):
            c.execute("SELECT 1")
    with db.read() as again:
        assert again is not mine and again.execute("SELECT 1").fetchone() == (1,)
    db.close()
