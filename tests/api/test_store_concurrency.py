"""One :class:`pallet.Store` used from several threads, while other processes work on the same
root: exports and garbage collections through the command line, and tags, removals, ingests and
collections through the library in another interpreter. Afterwards the store is sound: fsck
finds nothing, and every image's graph resolves to blobs of the recorded sizes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import pallet

pytestmark = pytest.mark.slow

# tags, removes and collects in its own interpreter, on its own Store over the same root
CHILD = """
import os, sys
import pallet

root, base, prefix = sys.argv[1:4]
with pallet.Store(root=root) as store:
    for i in range(12):
        store.tag(base, f"{prefix}-{i}:1")
        if i % 2:
            store.remove(f"{prefix}-{i}:1", gc=i % 4 == 1)
        with store.leases.temporary() as lease:
            data = os.urandom(4096)
            dg = store.content.ingest(f"{prefix}-blob-{i}", data, lease=lease)
            assert store.content.read(dg) == data
        if i % 3 == 0:
            store.gc()
    assert store.image(base).digest
print("ok")
"""


# ``pallet gc`` as the command line runs it, over and over
GC_LOOP = """
import sys
from pallet.cli.main import main

for _ in range(10):
    assert main(["--root", sys.argv[1], "gc"]) == 0
"""


def cli(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pallet.cli", "--root", str(root), *args]


def make_dir(path: Path, seed: int) -> Path:
    path.mkdir(parents=True)
    rnd = random.Random(seed)
    for i in range(4):
        (path / f"f{i}").write_bytes(rnd.randbytes(50_000))
    return path


def export_argv(root: Path, src: Path, name: str) -> list[str]:
    return cli(root, "export", "--layer", f"{src}:/app", "-t", name, "--progress", "quiet")


def test_one_store_from_threads_and_processes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    bases: dict[str, str] = {}
    for i in range(2):
        name = f"example.com/base{i}:1"
        out = subprocess.run(
            export_argv(root, make_dir(tmp_path / f"base{i}", i), name),
            capture_output=True,
            text=True,
            check=True,
        )
        bases[name] = out.stdout.split()[-1]
    exported = {
        f"example.com/proc{i}:1": make_dir(tmp_path / f"proc{i}", 100 + i) for i in range(3)
    }

    errors: list[str] = []
    kept: list[str] = []  # tags the threads made and did not remove
    lock = threading.Lock()

    with pallet.Store(root=root) as store:
        sizes = {n: store.image(n).size for n in bases}

        def guarded(fn: Callable[[int], None]) -> Callable[[int], None]:
            def run(k: int) -> None:
                try:
                    fn(k)
                except BaseException as exc:  # reported below, with the thread's name
                    with lock:
                        errors.append(f"{fn.__name__}[{k}]: {type(exc).__name__}: {exc}")

            return run

        @guarded
        def tagger(k: int) -> None:
            base = sorted(bases)[k % len(bases)]
            for i in range(15):
                name = f"example.com/t{k}-{i}:1"
                assert store.tag(base, name).digest == bases[base]
                if i % 3 == 0:
                    store.remove(name, gc=i % 2 == 0)
                else:
                    with lock:
                        kept.append(name)

        def busy(i: int) -> bool:
            """At least ``minimum`` rounds, and on while another process works."""
            return i < 5 or any(p.poll() is None for p in procs + children)

        @guarded
        def collector(k: int) -> None:
            i = 0
            while busy(i):
                store.gc()
                i += 1

        @guarded
        def reader(k: int) -> None:
            i = 0
            while busy(i):
                i += 1
                for img in store.images():
                    if img.name in bases:  # never touched: always whole, never resized
                        assert img.size == sizes[img.name], img
                        for d in store.graph(img):
                            assert store.content.info(d.digest).size == d.size

        @guarded
        def ingester(k: int) -> None:
            i = 0
            while busy(i):
                i += 1
                data = os.urandom(10_000 + i)
                with store.leases.temporary() as lease:
                    dg = store.content.ingest(f"thread-{k}-{i}", data, lease=lease)
                    store.gc()  # the lease holds the blob through a collection
                    assert store.content.read(dg) == data

        procs = [
            subprocess.Popen(export_argv(root, src, name), stdout=subprocess.PIPE, text=True)
            for name, src in exported.items()
        ]
        procs.append(
            subprocess.Popen([sys.executable, "-c", GC_LOOP, str(root)], stdout=subprocess.DEVNULL)
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(root), base, f"example.com/child{j}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for j, base in enumerate(sorted(bases))
        ]
        threads = [
            threading.Thread(target=fn, args=(k,), name=f"{fn.__name__}-{k}")
            for k, fn in enumerate([tagger, tagger, tagger, collector, reader, reader, ingester])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        outs = [p.communicate(timeout=300)[0] for p in procs + children]
        assert [p.returncode for p in procs + children] == [0] * len(outs)
        assert errors == []
        assert [o.strip() for o in outs[len(procs) :]] == ["ok"] * len(children)
        digests = dict(zip(exported, (o.split()[-1] for o in outs[: len(exported)]), strict=True))

    # afterwards, seen from a new Store: sound, and every name where it should be
    with pallet.Store(root=root) as store:
        report = store.fsck()
        assert report.ok and report.problems == (), report.problems
        by_name = {i.name: i for i in store.images()}
        for name, digest in {**bases, **digests}.items():
            assert by_name[name].digest == digest
        for name in kept:
            assert by_name[name].digest in bases.values()
        children_left = [n for n in by_name if n.startswith("example.com/child")]
        assert len(children_left) == 6 * len(bases)  # 12 tags each, every other one removed
        for img in by_name.values():
            graph = store.graph(img)
            assert sum(d.size for d in graph) == img.size
            for d in graph:
                assert store.content.info(d.digest).size == d.size
        assert store.content.active() == []
        # what the leases held is collectable now, and nothing an image holds goes
        store.gc()
        assert store.fsck().ok
        assert {i.name for i in store.images()} == set(by_name)
