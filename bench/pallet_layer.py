#!/usr/bin/env python3
"""Directory -> one layer blob in a content store, through pallet's library (for the benchmark).

usage: pallet_layer.py DIR STORE_ROOT [--compression gzip|zstd|uncompressed] [--level N]
                       [--threads N] [--producer auto|diff|tarfile] [--out RESULT.json]

The tar stream comes from ``pallet.archive.diff.write_diff(None, DIR, sink)`` when that module is
importable (``--producer auto``), else from Python's ``tarfile`` (PAX, numeric owners, sorted
walk), which is slower per entry; the result JSON says which ran. The blob goes to
``pallet.content.local.LocalStore(STORE_ROOT)`` (fsync'ed on commit, like every real export).
``--mode inline`` does the same work without the pipeline's producer/consumer split, to measure
what the split buys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pallet.compression import Compression
from pallet.compression.pipeline import write_layer


def tarfile_producer(root: str):
    import stat
    import tarfile

    def produce(sink) -> None:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(dirnames + filenames):
                    path = os.path.join(dirpath, name)
                    arc = os.path.relpath(path, root)
                    ti = tf.gettarinfo(path, arcname=arc)
                    ti.uname = ti.gname = ""
                    ti.mtime = int(ti.mtime)
                    if ti.isreg():
                        with open(path, "rb") as f:
                            tf.addfile(ti, f)
                    elif stat.S_ISSOCK(os.lstat(path).st_mode):
                        continue
                    else:
                        tf.addfile(ti)

    return produce


def diff_producer(root: str):
    from pallet.archive.diff import write_diff

    def produce(sink) -> None:
        write_diff(None, root, sink)

    return produce


#: seconds spent in the content store's commit (fsync of the blob, rename, fsync of its
#: directory): the part of a row that waits for the disk, which the shell pipelines never do
COMMIT_SECONDS: list[float] = []


def open_store(root: str):
    from pallet.content.local import LocalStore, LocalWriter

    commit = LocalWriter.commit

    def timed_commit(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return commit(self, *args, **kwargs)
        finally:
            COMMIT_SECONDS.append(time.perf_counter() - t)

    LocalWriter.commit = timed_commit
    return LocalStore(root)


def write_inline(produce, store, kind: Compression, level: int | None, threads: int) -> dict:
    """The same work as write_layer, but all on the producer's thread (no queue, no consumer
    thread; gzip/zstd workers still run): the comparison point for the pipeline's design."""
    import hashlib
    import uuid

    from pallet import labels
    from pallet.compression import compressor
    from pallet.oci.digest import Digest

    comp = compressor(kind, level, threads=threads)
    diff, blob = hashlib.sha256(), hashlib.sha256()
    n_in = n_out = 0
    with store.writer(f"inline-{uuid.uuid4().hex}") as w:

        class Sink:
            def write(self, data) -> int:
                nonlocal n_in, n_out
                diff.update(data)
                n_in += len(data)
                out = comp.compress(data)
                if out:
                    blob.update(out)
                    w.write(out)
                    n_out += len(out)
                return len(data)

        produce(Sink())
        out = comp.flush()
        blob.update(out)
        w.write(out)
        n_out += len(out)
        dgst = Digest("sha256:" + blob.hexdigest())
        did = "sha256:" + diff.hexdigest()
        w.commit(n_out, dgst, labels={labels.UNCOMPRESSED: did})
    return {"digest": dgst, "size": n_out, "diff_id": did, "uncompressed_size": n_in}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("store")
    ap.add_argument("--compression", default="gzip", choices=[c.value for c in Compression])
    ap.add_argument("--level", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--producer", default="auto", choices=["auto", "diff", "tarfile"])
    ap.add_argument(
        "--mode",
        default="pipeline",
        choices=["pipeline", "inline"],
        help="inline: compress on the producer's thread (comparison only)",
    )
    ap.add_argument("--out", default=None, help="write a JSON result here")
    a = ap.parse_args()

    producer = a.producer
    if producer == "auto":
        try:
            import pallet.archive.diff  # noqa: F401

            producer = "diff"
        except ImportError:
            producer = "tarfile"
    produce = diff_producer(a.dir) if producer == "diff" else tarfile_producer(a.dir)
    store = open_store(a.store)
    kind = Compression(a.compression)
    t0 = time.perf_counter()
    if a.mode == "inline":
        from pallet.compression import default_threads

        r = write_inline(produce, store, kind, a.level, a.threads or default_threads())
    else:
        res = write_layer(produce, store, compression=kind, level=a.level, threads=a.threads)
        r = {
            "digest": res.descriptor.digest,
            "size": res.descriptor.size,
            "diff_id": res.diff_id,
            "uncompressed_size": res.uncompressed_size,
        }
    wall = time.perf_counter() - t0
    out = {
        "producer": producer,
        "mode": a.mode,
        "compression": a.compression,
        "level": a.level,
        "threads": a.threads,
        **r,
        "wall_inside": wall,
        "commit_s": sum(COMMIT_SECONDS),
    }
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    else:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
