"""The store-management calls of the library: images, tags, removal, gc, fsck, the content
store, leases and the containerd calls, through names in ``pallet.__all__`` only.

Images are made by the ``pallet`` command in a subprocess (a real export of a real directory),
so these tests need nothing of pallet's internals.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import pallet
from support.containerd import Containerd

GC_EXPIRE = "containerd.io/gc.expire"


def cli(root: str | Path, *args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, f"{args}: {p.stderr}"
    return p.stdout


def make_dir(path: Path, seed: int, size: int = 200_000) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "data").write_bytes(random.Random(seed).randbytes(size))
    (path / "hello.txt").write_text(f"hello {seed}\n")
    return path


def export(root: str | Path, src: Path, name: str, *platforms: str) -> str:
    """``pallet export`` of ``src`` as ``name``; returns the root digest it printed."""
    plats = [a for p in platforms for a in ("--platform", p)]
    out = cli(root, "export", "--layer", f"{src}:/app", "-t", name, *plats, "--progress", "quiet")
    return out.strip().splitlines()[-1]


def blob_file(store: pallet.Store, digest: str) -> Path:
    """Where the embedded store keeps a blob (docs/architecture.md, "Store layout")."""
    alg, _, hx = digest.partition(":")
    return Path(store.where) / "content" / "blobs" / alg / hx


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- images -----------------------------------------------------------------------------------
def test_images_image_graph_and_sizes(pstore: pallet.Store, tmp_path: Path) -> None:
    multi = export(
        pstore.where, make_dir(tmp_path / "a", 1), "example.com/a:1", "linux/amd64", "linux/arm64"
    )
    single = export(pstore.where, make_dir(tmp_path / "b", 2), "example.com/b:1")
    imgs = pstore.images()
    assert [(i.name, i.digest) for i in imgs] == [
        ("example.com/a:1", multi),
        ("example.com/b:1", single),
    ]
    a, b = imgs
    assert a.media_type == "application/vnd.oci.image.index.v1+json"
    assert b.media_type == "application/vnd.oci.image.manifest.v1+json"
    for img in imgs:
        graph = pstore.graph(img)
        assert graph[0].digest == img.digest and len({d.digest for d in graph}) == len(graph)
        # everything the image references, each blob once, as the store holds it
        assert img.size == sum(d.size for d in graph)
        assert img.size == sum(pstore.content.info(d.digest).size for d in graph)
        assert (
            img.root_size
            == pstore.content.info(img.digest).size
            == len(pstore.content.read(img.digest))
        )
        assert img.target is not None and img.target.digest == img.digest
        assert img.created is not None and img.updated is not None
    # an index: two manifests and configs over one layer (the same directory for both)
    assert len(pstore.graph(a)) == 1 + 2 + 2 + 1
    layer = max(pstore.graph(a), key=lambda d: d.size)
    assert a.size - layer.size < 5000 < layer.size
    # lookups: as written, normalised, by filter
    assert pstore.image("example.com/a:1") == a
    assert pstore.images(["name~=/b:"]) == [b]
    assert pstore.images([f"target.digest=={single}"]) == [b]
    pstore.tag(b, "docker.io/library/short:1")
    assert pstore.image("short:1").digest == single
    with pytest.raises(pallet.NotFound, match="image example.com/none:1: not found"):
        pstore.image("example.com/none:1")
    with pytest.raises(pallet.InvalidArgument, match=r"name~=\("):
        pstore.images(["name~=("])


def test_size_counts_content_the_store_lacks_by_its_descriptor(
    pstore: pallet.Store, tmp_path: Path
) -> None:
    digest = export(
        pstore.where, make_dir(tmp_path / "a", 3), "example.com/a:1", "linux/amd64", "linux/arm64"
    )
    index = json.loads(pstore.content.read(digest))
    arm = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    before = pstore.image("example.com/a:1").size
    # the arm64 manifest goes (as if only amd64 had been pulled): its config is not reachable
    # any more, and the manifest counts by its descriptor
    arm_config = json.loads(pstore.content.read(arm["digest"]))["config"]
    pstore.content.remove(arm["digest"])
    assert pstore.image("example.com/a:1").size == before - arm_config["size"]
    with pytest.raises(pallet.NotFound):
        pstore.graph("example.com/a:1")


def test_tag_remove_gc(pstore: pallet.Store, tmp_path: Path) -> None:
    first = export(pstore.where, make_dir(tmp_path / "a", 4), "example.com/a:1")
    second = export(pstore.where, make_dir(tmp_path / "b", 5), "example.com/b:1")
    blobs = {i.digest for i in pstore.content.list()}
    t = pstore.tag("example.com/a:1", "example.com/a:latest")
    assert (t.name, t.digest) == ("example.com/a:latest", first)
    assert t.size == pstore.image("example.com/a:1").size
    # tagging an existing name moves it
    assert pstore.tag("example.com/b:1", "example.com/a:latest").digest == second
    assert [i.name for i in pstore.images()] == [
        "example.com/a:1",
        "example.com/a:latest",
        "example.com/b:1",
    ]
    with pytest.raises(pallet.NotFound, match="example.com/none:1"):
        pstore.tag("example.com/none:1", "example.com/x:1")
    with pytest.raises(pallet.InvalidArgument):
        pstore.tag("example.com/a:1", "bad name")

    # without gc the blobs stay until a collection; a dry run names them and removes nothing
    pstore.remove("example.com/a:1", gc=False)
    only_a = {d.digest for d in pstore.graph("example.com/b:1")} ^ blobs
    dry = pstore.gc(dry_run=True)
    assert dry.dry_run and set(dry.blobs) == only_a
    assert dry.bytes == sum(pstore.content.info(d).size for d in only_a)
    assert {i.digest for i in pstore.content.list()} == blobs
    st = pstore.gc()
    assert set(st.blobs) == only_a and st.bytes == dry.bytes and not st.dry_run
    for d in only_a:
        assert not blob_file(pstore, d).exists()
    # removing the last names collects on the last delete
    pstore.remove("example.com/a:latest", "example.com/b:1")
    assert pstore.images() == [] and pstore.content.list() == []
    with pytest.raises(pallet.NotFound, match="image example.com/b:1: not found"):
        pstore.remove("example.com/b:1")


def test_fsck_finds_and_repairs(pstore: pallet.Store, tmp_path: Path) -> None:
    export(pstore.where, make_dir(tmp_path / "a", 6), "example.com/a:1")
    graph = pstore.graph("example.com/a:1")
    report = pstore.fsck()
    assert report.ok and report.problems == () and report.blobs_verified == len(graph)
    layer = max(graph, key=lambda d: d.size)
    path = blob_file(pstore, layer.digest)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    report = pstore.fsck()
    assert not report.ok and report.blobs_verified == len(graph) - 1
    rot = [p for p in report.problems if p.kind == "blob"]
    assert [(p.subject, p.repaired) for p in rot] == [(layer.digest, False)]
    assert str(rot[0]).startswith(f"blob {layer.digest}: content hashes to sha256:")
    assert any(p.kind == "image" and p.subject == "example.com/a:1" for p in report.problems)
    repaired = pstore.fsck(repair=True)
    assert [p.repaired for p in repaired.problems if p.kind == "blob"] == [True]
    assert str(next(p for p in repaired.problems if p.kind == "blob")).endswith(" (repaired)")
    assert not path.exists() and blob_file(pstore, graph[0].digest).exists()
    after = pstore.fsck()
    assert not after.ok and [p.kind for p in after.problems] == ["image"]


# --- content ----------------------------------------------------------------------------------
def test_content_ingest_read_label_remove(pstore: pallet.Store) -> None:
    data = os.urandom(5000)
    dg = pstore.content.ingest("r1", data, labels={"a": "b"})
    assert dg == sha(data) and blob_file(pstore, dg).read_bytes() == data
    assert pstore.content.read(dg) == data
    with pstore.content.open(dg) as f:
        f.seek(4000)
        assert f.read() == data[4000:]
    info = pstore.content.info(dg)
    assert (info.digest, info.size, dict(info.labels)) == (dg, 5000, {"a": "b"})
    assert info.created <= info.updated <= datetime.now(UTC)
    assert [i.digest for i in pstore.content.list()] == [dg]
    assert pstore.content.list(['labels."a"==c']) == []
    new = pstore.content.label(dg, {"a": "", "c": "d"})
    assert dict(new.labels) == {"c": "d"} == dict(pstore.content.info(dg).labels)
    assert [i.digest for i in pstore.content.list(["labels.c==d"])] == [dg]
    # a blob the store has: success with the expected digest, AlreadyExists without
    assert pstore.content.ingest("r2", io.BytesIO(data), expected_digest=dg) == dg
    with pytest.raises(pallet.AlreadyExists):
        pstore.content.ingest("r3", data)
    pstore.content.remove(dg)
    assert pstore.content.list() == []
    with pytest.raises(pallet.NotFound, match=dg):
        pstore.content.info(dg)
    with pytest.raises(pallet.NotFound):
        pstore.content.remove(dg)
    with pytest.raises(pallet.InvalidArgument, match="sha256:zz"):
        pstore.content.info("sha256:zz")
    with pytest.raises(pallet.InvalidArgument, match="md5:00"):
        pstore.content.ingest("r4", b"x", expected_digest="md5:00")
    with pytest.raises(pallet.InvalidArgument):
        pstore.content.ingest("", b"x")
    assert pstore.content.list() == [] and pstore.content.active() == []


def test_content_interrupted_ingest_resumes_or_aborts(pstore: pallet.Store) -> None:
    data = os.urandom(300_000)
    wrong = sha(b"something else")
    with pytest.raises(pallet.DigestMismatch):
        pstore.content.ingest("up-1", data, expected_digest=wrong, expected_size=len(data))
    [st] = pstore.content.active()
    assert (st.ref, st.offset, st.total, st.expected) == ("up-1", len(data), len(data), wrong)
    assert pstore.content.active(["ref~=^none"]) == []
    # the same ref resumes: what the store has is skipped, the rest checked against the digest
    assert pstore.content.ingest("up-1", data, expected_digest=sha(data)) == sha(data)
    assert pstore.content.active() == [] and pstore.content.read(sha(data)) == data
    with pytest.raises(pallet.DigestMismatch):
        pstore.content.ingest("up-2", b"abc", expected_digest=wrong)
    pstore.content.abort("up-2")
    assert pstore.content.active() == []
    with pytest.raises(pallet.NotFound):
        pstore.content.abort("up-2")


# --- leases -----------------------------------------------------------------------------------
def test_leases_hold_content_until_they_go(pstore: pallet.Store) -> None:
    lease = pstore.leases.create("mine", expires=timedelta(hours=1), labels={"job": "7"})
    assert lease.id == "mine" and lease.labels["job"] == "7"
    expiry = datetime.fromisoformat(lease.labels[GC_EXPIRE].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expiry - datetime.now(UTC) <= timedelta(hours=1)
    dg = pstore.content.ingest("held", b"held data", lease=lease)
    [listed] = pstore.leases.list()
    assert listed.id == "mine" and listed.created is not None
    assert list(listed.resources) == [pallet.LeaseResource("content", dg)]
    assert pstore.gc().blobs == ()  # held
    with pytest.raises(pallet.AlreadyExists):
        pstore.leases.create("mine")
    pstore.leases.remove("mine", sync=True)  # collects: nothing holds the blob any more
    assert pstore.leases.list() == [] and pstore.content.list() == []
    with pytest.raises(pallet.NotFound, match="lease mine: not found"):
        pstore.leases.remove("mine")

    with pstore.leases.temporary(expires=timedelta(minutes=5)) as tmp:
        assert tmp.id.startswith("pallet-") and GC_EXPIRE in tmp.labels
        kept = pstore.content.ingest("tmp", b"temporary", lease=tmp.id)
        assert [x.id for x in pstore.leases.list()] == [tmp.id]
        assert pstore.gc().blobs == ()
    assert pstore.leases.list() == []
    assert pstore.gc().blobs == (kept,)
    # an expired lease is collected with what it held
    old = pstore.leases.create(expires=timedelta(seconds=-1))
    pstore.content.ingest("old", b"old", lease=old)
    st = pstore.gc()
    assert st.leases == (old.id,) and st.blobs == (sha(b"old"),)


# --- containerd -------------------------------------------------------------------------------
@pytest.mark.integration
def test_containerd_version_copy_images_remove(
    ctrd: Containerd, pstore: pallet.Store, tmp_path: Path
) -> None:
    digest = export(pstore.where, make_dir(tmp_path / "a", 7), "example.com/a:1")
    ns = f"api-{uuid.uuid4().hex[:12]}"
    never = tmp_path / "never"
    with pallet.Store.containerd(ctrd.socket, ns, root=never) as ctr:
        assert ctr.kind == "containerd" and ns in ctr.where
        v = ctr.version()
        assert (v.address, v.namespace) == (ctrd.socket, ns) and v.version[:1].isdigit()
        res = pstore.copy(
            "example.com/a:1", ctr, names=["example.com/ctr:1"], unpack=True, snapshotter="native"
        )
        graph = pstore.graph("example.com/a:1")
        assert (res.digest, list(res.names)) == (digest, ["example.com/ctr:1"])
        assert res.blobs_written == len(graph) and res.blobs_present == 0
        assert res.bytes_written == sum(d.size for d in graph)
        assert res.chain_id is not None and res.chain_id.startswith("sha256:")
        [img] = ctr.images()
        ours = pstore.image("example.com/a:1")
        assert (img.name, img.digest, img.size, img.root_size) == (
            "example.com/ctr:1",
            digest,
            ours.size,
            ours.root_size,
        )
        assert ctr.graph(img) == graph
        assert ctr.content.read(digest) == pstore.content.read(digest)
        again = pstore.copy(ours, ctr)  # its own name; everything is there already
        assert (list(again.names), again.blobs_written) == (["example.com/a:1"], 0)
        with pytest.raises(pallet.Unsupported):
            ctr.gc()
        with pytest.raises(pallet.Unsupported):
            ctr.fsck()
        ctr.remove("example.com/ctr:1", "example.com/a:1")
        assert ctr.images() == [] and ctr.content.list() == []
    assert not never.exists()  # only an export needs the embedded store beside containerd
    with pytest.raises(pallet.Unsupported):
        pstore.version()
    with pytest.raises(pallet.Unsupported):
        pstore.copy("example.com/a:1", pstore)
    with pytest.raises(pallet.Unavailable, match="containerd at"):
        pallet.Store.containerd(str(tmp_path / "none.sock"))


def test_bad_input_and_a_closed_store_raise_pallet_errors(tmp_path: Path) -> None:
    with pytest.raises(pallet.InvalidArgument, match="root 123: want a path"):
        pallet.Store(root=123)  # type: ignore[arg-type]
    store = pallet.Store(root=tmp_path / "s")
    digest = export(store.where, make_dir(tmp_path / "a", 6), "app:1")
    # filters=None is no filter
    assert [i.name for i in store.images(None)] == ["app:1"]
    assert len(store.content.list(None)) == 3 and store.content.active(None) == []
    assert store.leases.list(None) == []
    # data as text: refused before anything is written, no ingest left behind
    with pytest.raises(pallet.InvalidArgument, match="data of ingest r1: .* not str"):
        store.content.ingest("r1", "text")  # type: ignore[arg-type]
    assert store.content.active() == []
    with pytest.raises(pallet.InvalidArgument, match="to 'x': want a pallet.Store"):
        store.copy("app:1", "x")  # type: ignore[arg-type]
    # remove takes an Image, and resolves a short name as image() does
    store.tag("app:1", "example.com/app:2")
    store.remove(store.image("example.com/app:2"), gc=False)
    store.tag("app:1", "docker.io/library/web:1")
    assert store.image("web:1").digest == digest
    store.remove("web:1", gc=False)
    assert [i.name for i in store.images()] == ["app:1"]
    store.remove("app:1")
    assert store.images() == []
    with pytest.raises(pallet.NotFound, match="image web:1: not found"):
        store.remove("web:1")

    content, leases = store.content, store.leases
    store.close()
    store.close()  # twice is fine
    where = store.where
    for call in (
        store.images,
        lambda: store.image("app:1"),
        lambda: store.remove("app:1"),
        store.gc,
        content.list,
        leases.list,
        lambda: store.content.list(),
    ):
        with pytest.raises(pallet.FailedPrecondition) as exc:
            call()
        assert str(exc.value) == f"store {where}: closed"
