#!/usr/bin/env python3
"""Writing an image into a real containerd: pallet's client against ``ctr images import``.

usage: .venv/bin/python bench/containerd_export.py DIR [DIR...] [--rounds N]
           [--snapshotter native|overlayfs] [--compression gzip|zstd|uncompressed]
           [--out RESULT.json]

``DIR`` is a root filesystem tree, e.g. a corpus of the shared ``corpus.sh``
(``$BENCH_DATA/corpus/{debian,pyapp,bigfiles}``, default ``~/.cache/pallet-bench``); any small
tree works for a smoke run. Needs root, Debian's ``containerd`` and ``ctr``, and the
``pallet[containerd]`` extra in the interpreter that runs this script.

Rows, per DIR, run round-robin (``--rounds``, default 3, plus one untimed warm-up):

* ``pallet export``: the whole export with containerd as the store: DIR is tarred and compressed
  by pallet's one-pass pipeline straight into containerd's content store over gRPC, then config,
  manifest (with GC labels), image record, unpack through the daemon's ``Diff.Apply`` and the
  config's snapshot label, all under a temporary lease.
* ``pallet copy``: the same image, already in a pallet store, copied into containerd and unpacked
  (``pallet.containerd.copy_image``): the same work as the next row.
* ``ctr import``: ``ctr images import --snapshotter S --base-name bench/img TAR`` of the OCI
  tarball that ``pallet save`` wrote from that pallet store (ctr unpacks by default).
* with ``--write-only`` also ``pallet copy, no unpack`` and ``ctr import --no-unpack``: the
  transfer into the content store alone.

Untimed: a private containerd (temp root/state/socket under ``$BENCH_DATA/work-pallet``, CRI
off, stopped by its PID at the end), building the image into a temporary pallet store, the
tarball. Every row runs in a fresh namespace and ends by deleting its image with ``sync``, so the
daemon's collector frees blobs and snapshots and the next row writes everything again (the
shared content policy would otherwise make later rows free).

Output: a table of median wall seconds and the ratios ``pallet copy / ctr import`` and
``pallet export / ctr import`` (below 1: pallet is faster); ``--out`` also writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pallet import labels as L
from pallet.compression import Compression
from pallet.compression.pipeline import write_layer
from pallet.containerd import Client, connect, copy_image, unpack_image
from pallet.errors import AlreadyExists, NotFound
from pallet.images import Image
from pallet.leases import temporary
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import canonical

NAME = "bench/img:latest"


# -- a private containerd ------------------------------------------------------------------------
class Daemon:
    def __init__(self, work: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ctrd-export-", dir=work))
        self.socket = str(self.dir / "containerd.sock")
        (self.dir / "config.toml").write_text(
            "\n".join(
                [
                    "version = 2",
                    f'root = "{self.dir / "root"}"',
                    f'state = "{self.dir / "state"}"',
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                    "[grpc]",
                    f'  address = "{self.socket}"',
                    "[ttrpc]",
                    f'  address = "{self.socket}.ttrpc"',
                    "[debug]",
                    '  address = ""',
                    '  level = "warn"',
                    "[metrics]",
                    '  address = ""',
                    '[plugins."io.containerd.internal.v1.opt"]',
                    f'  path = "{self.dir / "opt"}"',
                    "",
                ]
            )
        )
        with open(self.dir / "containerd.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.dir / "config.toml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        for _ in range(600):
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.socket) and self.ctr("default", "version", check=False) == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"containerd did not start; see {self.dir / 'containerd.log'}")

    def ctr(self, ns: str, *args: str, check: bool = True) -> int:
        r = subprocess.run(
            ["ctr", "-a", self.socket, "-n", ns, *args], capture_output=True, text=True
        )
        if check and r.returncode != 0:
            raise SystemExit(f"ctr {' '.join(args)} failed: {r.stderr.strip()}")
        return r.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the image -----------------------------------------------------------------------------------
def producer(root: str) -> Callable[[Any], None]:
    from pallet.archive.diff import write_diff

    def produce(sink: Any) -> None:
        write_diff(None, root, sink)

    return produce


def put(store: Any, data: bytes, media_type: str, lease: str, labels: dict[str, str]) -> Descriptor:
    desc = Descriptor(media_type=media_type, digest=canonical(data), size=len(data))
    try:
        with store.writer(f"bench-{desc.digest}", lease=lease) as w:
            w.write(data)
            w.commit(desc.size, desc.digest, labels=labels)
    except AlreadyExists:  # the same config/manifest from an earlier round
        pass
    return desc


def export_image(
    store: Any, tree: str, compression: Compression, lease: str
) -> tuple[Descriptor, Descriptor]:
    """Layer, config and manifest of ``tree`` into ``store``; returns (manifest, config)."""
    res = write_layer(producer(tree), store, compression=compression, lease=lease)
    plat = Platform.default()
    cfg = json.dumps(
        {
            "architecture": plat.architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(res.diff_id)]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    cdesc = put(store, cfg, mt.OCI_CONFIG, lease, {})
    man = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": cdesc.to_json(),
            "layers": [res.descriptor.to_json()],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    gc = {
        f"{L.GC_REF_CONTENT}.config": str(cdesc.digest),
        f"{L.GC_REF_CONTENT}.l.0": str(res.descriptor.digest),
    }
    return put(store, man, mt.OCI_MANIFEST, lease, gc), cdesc


# -- rows ----------------------------------------------------------------------------------------
def row_export(c: Client, tree: str, comp: Compression, sn: str) -> None:
    with temporary(c.leases) as lease:
        mdesc, _ = export_image(c.content, tree, comp, lease)
        img = Image(name=NAME, target=mdesc)
        try:
            c.images.update(img)
        except NotFound:
            c.images.create(img)
        unpack_image(c, mdesc, snapshotter=sn, lease=lease)


def row_copy(c: Client, db: Any, sn: str, unpack: bool = True) -> None:
    copy_image(c, db.content, db.get(NAME), unpack=unpack, snapshotter=sn)


def row_ctr(d: Daemon, ns: str, tar: Path, sn: str, unpack: bool = True) -> None:
    extra = ["--snapshotter", sn] if unpack else ["--no-unpack"]
    d.ctr(ns, "images", "import", *extra, "--base-name", "bench/img", str(tar))


def cleanup(d: Daemon, c: Client) -> None:
    names = [i.name for i in c.images.list()]
    if not names:
        raise SystemExit(f"namespace {c.namespace}: no image after the row")
    for n in names[:-1]:
        c.images.delete(n)
    c.images.delete(names[-1], sync=True)
    left = list(c.content.walk())
    if left:
        raise SystemExit(f"namespace {c.namespace}: {len(left)} blobs left after delete --sync")


def bench_dir(
    d: Daemon,
    tree: str,
    rounds: int,
    sn: str,
    comp: Compression,
    work: Path,
    write_only: bool = False,
) -> dict[str, Any]:
    from pallet.metadata.db import open_db

    store_root = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    tar = store_root / "img-oci.tar"
    try:
        db = open_db(store_root)
        with temporary(db.leases) as lease:
            mdesc, cdesc = export_image(db.content, tree, comp, lease)
            db.create(Image(name=NAME, target=mdesc))
        layer_size = sum(i.size for i in db.content.walk()) - mdesc.size - cdesc.size
        subprocess.run(
            [sys.executable, "-m", "pallet.cli", "save", NAME, "-o", str(tar), "--root",
             str(store_root)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        rows: dict[str, Callable[[Client], None]] = {
            "pallet export": lambda c: row_export(c, tree, comp, sn),
            "pallet copy": lambda c: row_copy(c, db, sn),
            "ctr import": lambda c: row_ctr(d, c.namespace, tar, sn),
        }
        if write_only:
            rows["pallet copy, no unpack"] = lambda c: row_copy(c, db, sn, unpack=False)
            rows["ctr import --no-unpack"] = lambda c: row_ctr(d, c.namespace, tar, sn, False)
        times: dict[str, list[float]] = {k: [] for k in rows}
        base = connect(d.socket, "bench")
        try:
            for r in range(rounds + 1):
                order = list(rows) if r % 2 == 0 else list(reversed(rows))
                for name in order:
                    c = base.with_namespace(f"bench-{uuid.uuid4().hex[:8]}")
                    t0 = time.perf_counter()
                    rows[name](c)
                    dt = time.perf_counter() - t0
                    cleanup(d, c)
                    if r:  # round 0 warms the page cache and the daemon
                        times[name].append(dt)
        finally:
            base.close()
        db.close()
    finally:
        shutil.rmtree(store_root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = {}
    if write_only:
        extra["copy_vs_ctr_no_unpack"] = (
            med["pallet copy, no unpack"] / med["ctr import --no-unpack"]
        )
    return {
        **extra,
        "dir": tree,
        "layer_bytes": layer_size,
        "snapshotter": sn,
        "compression": comp.value,
        "rounds": rounds,
        "times": times,
        "median": med,
        "copy_vs_ctr": med["pallet copy"] / med["ctr import"],
        "export_vs_ctr": med["pallet export"] / med["ctr import"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", metavar="DIR")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snapshotter", default="native", choices=["native", "overlayfs"])
    ap.add_argument("--compression", default="gzip", choices=[c.value for c in Compression])
    ap.add_argument(
        "--write-only",
        action="store_true",
        help="also time both without unpacking (pallet copy vs ctr import --no-unpack)",
    )
    ap.add_argument("--out", help="also write the results as JSON here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (containerd's socket and mounts)")
    bench_data = Path(os.environ.get("BENCH_DATA", Path.home() / ".cache" / "pallet-bench"))
    work = bench_data / "work-pallet"
    work.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(work)
    results = []
    try:
        for tree in a.dirs:
            results.append(
                bench_dir(
                    daemon,
                    tree,
                    a.rounds,
                    a.snapshotter,
                    Compression(a.compression),
                    work,
                    a.write_only,
                )
            )
    finally:
        daemon.stop()
    print(
        f"{'dir':<40} {'layer MiB':>9} {'export s':>9} {'copy s':>8} {'ctr s':>7}"
        f" {'copy/ctr':>9} {'export/ctr':>10}"
    )
    for r in results:
        m = r["median"]
        print(
            f"{r['dir'][-40:]:<40} {r['layer_bytes'] / 2**20:>9.1f} {m['pallet export']:>9.2f}"
            f" {m['pallet copy']:>8.2f} {m['ctr import']:>7.2f}"
            f" {r['copy_vs_ctr']:>9.2f} {r['export_vs_ctr']:>10.2f}"
        )
        if "copy_vs_ctr_no_unpack" in r:
            print(
                f"{'  without unpack':<40} {'':>9} {'':>9}"
                f" {m['pallet copy, no unpack']:>8.2f} {m['ctr import --no-unpack']:>7.2f}"
                f" {r['copy_vs_ctr_no_unpack']:>9.2f}"
            )
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
