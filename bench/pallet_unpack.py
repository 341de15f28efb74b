#!/usr/bin/env python3
"""One compressed layer blob -> a directory, through pallet's own unpack code (for the benchmark).

usage: pallet_unpack.py BLOB DEST [--diff-id sha256:HEX] [--stage apply|decompress]
                        [--profile OUT.prof] [--out RESULT.json]

``--stage apply`` (default) does what ``pallet unpack`` (``pallet.layout.unpack``) and the
snapshotter unpack (``pallet.rootfs``) do per layer, minus the store and image lookup:
``pallet.compression.decompressed_reader`` over the blob file (gzip/zstd sniffed) feeding
``pallet.archive.apply.apply_tar(tar, DEST, expected_diff_id=...)``. DEST must be missing or an
empty directory (it is created with mode 0755 like ``pallet unpack`` does).

``--stage decompress`` only reads the decompressed stream in 1 MiB chunks into a sha256 hasher
(what ``apply_tar``'s reader does with every byte), writing nothing: the floor that
decompression plus diff-ID hashing sets for the apply. ``--profile`` runs the stage under
cProfile, writes the stats to OUT.prof and prints the top functions to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pallet.archive.apply import apply_tar
from pallet.compression import decompressed_reader
from pallet.oci.digest import Digest


def stage_apply(blob: str, dest: str, diff_id: Digest | None) -> dict[str, object]:
    root = Path(dest)
    if root.exists():
        if any(root.iterdir()):
            raise SystemExit(f"{dest}: not empty")
    else:
        root.mkdir(mode=0o755, parents=True)
    with (
        open(blob, "rb") as raw,
        decompressed_reader(raw, name=f"layer {blob}") as tar,
    ):
        res = apply_tar(tar, root, expected_diff_id=diff_id)
    return {"diff_id": str(res.diff_id), "warnings": list(res.warnings)}


def stage_decompress(blob: str) -> dict[str, object]:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    with open(blob, "rb") as raw, decompressed_reader(raw, name=f"layer {blob}") as tar:
        while True:
            n = tar.readinto(view)
            if not n:
                break
            h.update(view[:n])
            total += n
    return {"diff_id": f"sha256:{h.hexdigest()}", "bytes": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("blob")
    ap.add_argument("dest")
    ap.add_argument("--diff-id", default=None, help="expected diff ID (checked, as unpack does)")
    ap.add_argument("--stage", choices=["apply", "decompress"], default="apply")
    ap.add_argument("--profile", default=None, metavar="OUT.prof")
    ap.add_argument("--out", default=None, metavar="RESULT.json")
    a = ap.parse_args()
    diff_id = Digest.parse(a.diff_id) if a.diff_id else None

    def work() -> dict[str, object]:
        if a.stage == "apply":
            return stage_apply(a.blob, a.dest, diff_id)
        return stage_decompress(a.blob)

    t0 = time.perf_counter()
    if a.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        res = prof.runcall(work)
        prof.dump_stats(a.profile)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        res = work()
    res["seconds"] = time.perf_counter() - t0
    res["stage"] = a.stage
    if a.stage == "decompress" and diff_id is not None and res["diff_id"] != str(diff_id):
        raise SystemExit(f"diff ID mismatch: {res['diff_id']} != {diff_id}")
    if a.out:
        Path(a.out).write_text(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
