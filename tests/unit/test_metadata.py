"""Image store, lease manager and garbage collection on the real SQLite-backed store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pallet.errors import AlreadyExists, InvalidArgument, NotFound, Unsupported
from pallet.images import Image
from pallet.leases import Resource, temporary
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from support.store import graph, put, random_image

ZERO = Digest("sha256:" + "0" * 64)


def exists(db: Store, d: str) -> bool:
    return db.content.blob_path(Digest(d)).exists()


# ---------------------------------------------------------------- images
def test_image_create_get_list_update_delete(db: Store) -> None:
    t = Descriptor(media_type=mt.OCI_MANIFEST, digest=ZERO, size=10)
    img = db.images.create(Image(name="docker.io/library/a:1", target=t, labels={"x": "1"}))
    assert img.created_at is not None and img.created_at == img.updated_at
    with pytest.raises(AlreadyExists, match="docker.io/library/a:1"):
        db.images.create(Image(name="docker.io/library/a:1", target=t))
    got = db.images.get("docker.io/library/a:1")
    assert got.target == t and got.labels == {"x": "1"}
    db.images.create(Image(name="b", target=t))
    assert [i.name for i in db.images.list()] == ["b", "docker.io/library/a:1"]
    assert [i.name for i in db.images.list(["name~=^docker"])] == ["docker.io/library/a:1"]
    assert [i.name for i in db.images.list(["labels.x==1"])] == ["docker.io/library/a:1"]
    t2 = replace(t, size=20, annotations={"k": "v"})
    up = db.images.update(Image(name="b", target=t2, labels={"y": "2"}), ["target"])
    assert up.target.size == 20 and up.labels == {}
    up = db.images.update(Image(name="b", target=t, labels={"y": "2"}), ["labels.y"])
    assert up.labels == {"y": "2"} and up.target.size == 20
    up = db.images.update(
        Image(name="b", target=replace(t, annotations={"k": ""}), labels={}), ["annotations.k"]
    )
    assert dict(up.target.annotations) == {}
    with pytest.raises(InvalidArgument, match="field path"):
        db.images.update(Image(name="b", target=t), ["name"])
    with pytest.raises(NotFound, match="nope"):
        db.images.update(Image(name="nope", target=t))
    assert db.images.get("b").created_at == db.images.list(["name==b"])[0].created_at
    db.images.delete("b")
    with pytest.raises(NotFound):
        db.images.get("b")
    with pytest.raises(NotFound):
        db.images.delete("b")


@pytest.mark.parametrize(
    "target,match",
    [
        (Descriptor(media_type="", digest=ZERO, size=1), "media type"),
        (Descriptor(media_type=mt.OCI_MANIFEST, digest=ZERO, size=0), "size"),
        (Descriptor(media_type=mt.OCI_MANIFEST, digest=Digest(""), size=1), "digest"),
    ],
)
def test_image_target_validation(db: Store, target: Descriptor, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        db.images.create(Image(name="x", target=target))
    assert db.images.list() == []


# ---------------------------------------------------------------- leases
def test_leases(db: Store) -> None:
    lm = db.leases
    lease = lm.create("l1", {"a": "b"})
    assert lease.id == "l1"
    with pytest.raises(AlreadyExists):
        lm.create("l1")
    assert [x.id for x in lm.list()] == ["l1"]
    assert [x.id for x in lm.list(["labels.a==c"])] == []
    lm.add_resource("l1", Resource("content", ZERO))
    lm.add_resource("l1", Resource("snapshots/native", "k1"))
    assert lm.list_resources("l1") == [
        Resource("content", ZERO),
        Resource("snapshots/native", "k1"),
    ]
    lm.delete_resource("l1", Resource("content", ZERO))
    assert lm.list_resources("l1") == [Resource("snapshots/native", "k1")]
    with pytest.raises(Unsupported):
        lm.add_resource("l1", Resource("containers", "x"))
    with pytest.raises(NotFound, match="lease does not exist"):
        lm.add_resource("nope", Resource("content", ZERO))
    lm.delete("l1")
    with pytest.raises(NotFound):
        lm.delete("l1")


def test_writes_under_a_lease_are_attached(db: Store) -> None:
    with temporary(db.leases) as lid:
        d = put(db, b"leased", lease=lid)
        w = db.content.writer("pending", lease=lid)
        w.write(b"x")
        w.close()
        res = db.leases.list_resources(lid)
        assert Resource("content", d.digest) in res
        assert Resource("ingests", "pending") in res
        # an existing blob written again under another lease is attached to it too
        with temporary(db.leases) as lid2:
            put(db, b"leased", lease=lid2)
            assert Resource("content", d.digest) in db.leases.list_resources(lid2)
        exp = db.leases.list(["id==" + lid])[0].labels["containerd.io/gc.expire"]
        assert datetime.fromisoformat(exp.replace("Z", "+00:00")) > datetime.now(UTC)
    assert db.leases.list() == []
    with pytest.raises(NotFound, match="lease"):
        put(db, b"no such lease", lease="missing")


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
        m = random_image(db, 1, layers=3, lease=lid)
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
        m1 = random_image(db, 1, lease=lid, shared_layer=shared)
        m2 = random_image(db, 2, lease=lid, shared_layer=shared)
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
    m = random_image(db, 3)
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
