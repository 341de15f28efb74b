"""Several processes on one store, and writers killed with SIGKILL at several points."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pallet.metadata.store import open_store
from pallet.oci.digest import Digest

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, random, sys
    sys.path.insert(0, sys.argv[3])
    from support.images import put, random_image
    from pallet.images import Image
    from pallet.leases import temporary
    from pallet.errors import NotFound
    from pallet.metadata.store import open_store
    db = open_store(sys.argv[1])
    wid = int(sys.argv[2])
    out = []
    for i in range(12):
        if wid == 0:                  # the collector
            db.collect()
            continue
        with temporary(db.leases) as lid:
            shared = b"shared-by-everyone" * 1000
            m = random_image(db, wid * 100 + i % 3, sizes=[20000] * 2, lease=lid,
                             shared=[shared]).manifest
            name = f"w{wid}/img:{i}"
            try:
                db.images.update(Image(name=name, target=m), ["target"])
            except NotFound:
                db.images.create(Image(name=name, target=m))
            # labels from several processes on one shared blob must all survive
            info = db.content.info(m.digest)
        # under a lease: until the gc.root label is on, the collector may take an unleased blob
        with temporary(db.leases) as lid2:
            d = put(db, b"common-label-target", lease=lid2)
            from dataclasses import replace
            db.content.update(replace(db.content.info(d.digest), labels={f"w{wid}.{i}": "1",
                              "containerd.io/gc.root": "1"}), [f"labels.w{wid}.{i}",
                              "labels.containerd.io/gc.root"])
        out.append([name, str(m.digest)])
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_many_processes_one_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    open_store(root).close()
    tests_dir = str(Path(__file__).resolve().parents[2])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), str(w), tests_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(5)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(out)
    db = open_store(root)
    db.collect()
    assert db.fsck() == []
    names = {i.name: i.target.digest for i in db.images.list()}
    for out in results[1:]:
        for name, dg in json.loads(out):
            assert names[name] == dg
    # every label written by every process on the shared blob is there
    common = Digest("sha256:" + hashlib.sha256(b"common-label-target").hexdigest())
    lbl = db.content.info(common).labels
    assert {f"w{w}.{i}" for w in range(1, 5) for i in range(12)} <= set(lbl)
    # graphs complete after concurrent collection
    from pallet.images import walk

    for img in db.images.list():
        for d in walk(db.content, img.target):
            assert db.content.blob_path(d.digest).exists()
    db.close()


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pallet.metadata.store import open_store
    db = open_store(sys.argv[1])
    data = open(sys.argv[2], "rb").read()
    w = db.content.writer("victim")
    print("offset", w.offset, flush=True)
    step = 1 << 16
    pos = w.offset
    while pos < len(data):
        w.write(data[pos:pos + step]); pos += step
        print("wrote", pos, flush=True)
        if sys.argv[3] == "slow":
            import time; time.sleep(0.002)
    print("committing", flush=True)
    print(w.commit(len(data)), flush=True)
    """
)


@pytest.mark.parametrize("kill_at", ["start", "early", "middle", "end", "commit"])
def test_sigkill_writer_leaves_store_valid_and_resumable(tmp_path: Path, kill_at: str) -> None:
    root = tmp_path / "store"
    open_store(root).close()
    payload = tmp_path / "payload"
    data = os.urandom(4 << 20)
    payload.write_bytes(data)
    dg = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    target = {"start": 0, "early": 1 << 16, "middle": 2 << 20, "end": len(data)}.get(kill_at)
    p = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root), str(payload), "slow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    for line in p.stdout:
        word, _, num = line.partition(" ")
        if kill_at == "commit" and word == "committing":
            break
        if word in ("offset", "wrote") and target is not None and int(num) >= target:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    db = open_store(root)
    assert db.fsck() == []
    blob = db.content.blob_path(dg)
    if blob.exists():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == dg.hex
    else:
        st = db.content.status("victim")
        assert 0 <= st.offset <= len(data)
        # what is on disk is a prefix of the payload
        with db.content.writer("victim") as w:
            assert w.offset == st.offset
            w.write(data[w.offset :])
            assert w.commit(len(data), dg) == dg
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == dg.hex
    assert db.fsck() == []
    db.close()
