#!/usr/bin/env python3
"""Writing an image into a real containerd: ``pallet export`` against ``ctr images import``.

usage: .venv/bin/python bench/containerd_export.py DIR [DIR...] [--rounds N]
           [--snapshotter native|overlayfs] [--compression gzip|zstd|uncompressed]
           [--out RESULT.json]

``DIR`` is a root filesystem tree, e.g. a corpus of the shared ``corpus.sh``
(``$BENCH_DATA/corpus/{debian,pyapp,bigfiles}``, default ``~/.cache/pallet-bench``); any small
tree works for a smoke run. Needs root, Debian's ``containerd`` and ``ctr``, and the
``pallet[containerd]`` extra in the interpreter that runs this script.

Rows, per DIR, run round-robin (``--rounds``, default 3, plus one untimed warm-up):

* ``pallet export``: the real command line, ``pallet export --rootfs DIR -o
  type=image,name=bench/img:latest,unpack=true,compression=C --containerd SOCK --namespace NS
  --snapshotter S``, in its own process: DIR is tarred and compressed by pallet's one-pass
  pipeline straight into containerd's content store over gRPC, then config, manifest (with GC
  labels), image record and unpack through the daemon's ``Diff.Apply``, under a temporary lease.
* ``pallet copy``: the same image, already in a pallet store (written there by ``pallet export``
  of the same DIR), copied into containerd and unpacked (``pallet.containerd.copy_image``).
* ``ctr import``: ``ctr images import --snapshotter S --base-name bench/img TAR`` of the OCI
  tarball that ``pallet save`` wrote from that pallet store (ctr unpacks by default).
* with ``--write-only`` also ``pallet copy, no unpack`` and ``ctr import --no-unpack``: the
  transfer into the content store alone.

All exports run with ``SOURCE_DATE_EPOCH`` fixed, so every row leaves the same image: after each
row (untimed) the image's manifest digest in the daemon must be the one in the pallet store.

Untimed: a private containerd (temp root/state/socket under ``$BENCH_DATA/work-pallet``, CRI
off, stopped by its PID at the end), building the image into a temporary pallet store, the
tarball, a fresh (empty) pallet store for each ``pallet export`` row (it only holds the
snapshot record of DIR, which is registered, not copied). Every row runs in a fresh namespace
and ends by deleting its image with ``sync``, so the daemon's collector frees blobs and
snapshots and the next row writes everything again (the shared content policy would otherwise
make later rows free).

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

from pallet.compression import Compression
from pallet.containerd import Client, connect, copy_image
from pallet.images import children
from pallet.oci import mediatypes as mt

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
#: fixed, so that the exports of one DIR give one image whatever the row
EPOCH = "1700000000"


def pallet_cli(*args: str) -> str:
    """Run ``pallet ARGS…`` with this interpreter and this checkout's sources; its stdout."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    r = subprocess.run(
        [sys.executable, "-m", "pallet.cli", *args], capture_output=True, text=True, env=env
    )
    if r.returncode != 0:
        raise SystemExit(f"pallet {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def export_args(tree: str, comp: Compression, *extra: str) -> list[str]:
    return [
        "export",
        "--rootfs",
        tree,
        "-o",
        ",".join([f"type=image,name={NAME}", *extra, f"compression={comp.value}"]),
        "--progress",
        "quiet",
    ]


# -- rows ----------------------------------------------------------------------------------------
def row_export(d: Daemon, ns: str, root: Path, tree: str, comp: Compression, sn: str) -> None:
    pallet_cli(
        "--root",
        str(root),
        *export_args(tree, comp, "unpack=true"),
        "--containerd",
        d.socket,
        "--namespace",
        ns,
        "--snapshotter",
        sn,
    )


def row_copy(c: Client, db: Any, sn: str, unpack: bool = True) -> None:
    copy_image(c, db.content, db.images.get(NAME), unpack=unpack, snapshotter=sn)


def row_ctr(d: Daemon, ns: str, tar: Path, sn: str, unpack: bool = True) -> None:
    extra = ["--snapshotter", sn] if unpack else ["--no-unpack"]
    d.ctr(ns, "images", "import", *extra, "--base-name", "bench/img", str(tar))


def cleanup(d: Daemon, c: Client, want: str) -> None:
    """Check the row's image (``want``: its manifest digest), then delete it with ``sync``."""
    imgs = c.images.list()
    if not imgs:
        raise SystemExit(f"namespace {c.namespace}: no image after the row")
    got = {str(i.target.digest) for i in imgs}
    if got != {want}:
        raise SystemExit(f"namespace {c.namespace}: images {sorted(got)}, want {want}")
    for i in imgs[:-1]:
        c.images.delete(i.name)
    c.images.delete(imgs[-1].name, sync=True)
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
    from pallet.metadata.store import open_store

    store_root = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    tar = store_root / "img-oci.tar"
    scratch: list[Path] = []

    def fresh_root() -> Path:
        p = Path(tempfile.mkdtemp(prefix="export-", dir=work))
        open_store(p).close()
        scratch.append(p)
        return p

    try:
        want = pallet_cli("--root", str(store_root), *export_args(tree, comp)).strip()
        db = open_store(store_root)
        target = db.images.get(NAME).target
        if str(target.digest) != want or not mt.is_manifest(target.media_type):
            raise SystemExit(f"pallet export printed {want}, stored {target}")
        layer_size = sum(x.size for x in children(db.content, target)[1:])  # [0] is the config
        pallet_cli("--root", str(store_root), "save", NAME, "-o", str(tar))
        roots: dict[str, Path] = {}

        def export_row(c: Client) -> None:
            row_export(d, c.namespace, roots[c.namespace], tree, comp, sn)

        rows: dict[str, Callable[[Client], None]] = {
            "pallet export": export_row,
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
                    if name == "pallet export":
                        roots[c.namespace] = fresh_root()
                    t0 = time.perf_counter()
                    rows[name](c)
                    dt = time.perf_counter() - t0
                    cleanup(d, c, want)
                    if r:  # round 0 warms the page cache and the daemon
                        times[name].append(dt)
        finally:
            base.close()
        db.close()
    finally:
        for p in [store_root, *scratch]:
            shutil.rmtree(p, ignore_errors=True)
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
