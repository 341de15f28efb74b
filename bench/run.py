#!/usr/bin/env python3
"""pallet's benchmark: directory -> one layer blob, against peers, in the same round-robin rounds.

usage: bench/run.py [corpus ...] [--rounds 5] [--warmup 1] [--only REGEX] [--no-buildah]
                    [--skip-corpus] [--set main|variants|unpack]
                    [--unpack-layer pallet|umoci] [--unpack-dest DIR]

What it does, in one run:

1. builds the corpora (debian, pyapp, bigfiles) with the shared ``corpus.sh`` (idempotent; the
   data lives in ``$BENCH_DATA``, default ``~/.cache/pallet-bench``, never in the repository);
2. per corpus, writes a plan and runs it with the shared round-robin runner ``bench_run.py``
   (every benchmark once per round, round after round, so the drift of this shared machine hits
   all rows alike; wall time, CPU time of the whole process tree and peak RSS per run);
3. checks the outputs (untimed): pallet's blob decompresses to a tar that GNU tar lists, the
   same digest comes out of a second run, and the layer sizes of pallet and umoci;
4. writes ``report.md`` (ratios against peers measured in the same run) next to the raw JSON in
   ``$BENCH_DATA/results-pallet/<UTC time>/`` and prints it.

Rows (``--set main``): the reference ``tar | pigz -6 -p2 | sha256sum`` (the "x ref" column of
the shared baselines), ``tar | zstd -3 -T2 | sha256sum``, ``umoci insert``, ``buildah commit``
(vfs driver; skipped with ``--no-buildah`` or when buildah cannot build the container), pallet
gzip (default level 3) and pallet zstd (level 3). ``--set variants`` adds pallet rows that
explain design choices: gzip with one compression thread, gzip with compression on the
producer's thread (no pipeline queue), gzip level 6 (zlib-ng) and Python's tarfile as producer.

``--set unpack`` times unpacking instead: per corpus, one gzip layer (made untimed by ``pallet
export``, or ``umoci insert`` with ``--unpack-layer umoci``) is unpacked into an empty directory by
``umoci raw unpack`` (the reference), ``pigz -d | tar -x``, pallet's per-layer code
(``bench/pallet_unpack.py``) and the whole ``pallet unpack`` command on a store holding the same
blob; the trees are compared afterwards and the report names the file system of the DESTs.

The shared scripts are found in ``$PALLET_BENCH_SHARED``, default ``<repo>/../shared/bench``;
they are only read and executed, never modified.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = ["debian", "pyapp", "bigfiles"]


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def shared_dir() -> Path:
    d = Path(os.environ.get("PALLET_BENCH_SHARED", REPO.parent / "shared" / "bench"))
    for f in ("corpus.sh", "bench_run.py"):
        if not (d / f).is_file():
            raise SystemExit(f"shared bench scripts not found: {d / f} (set PALLET_BENCH_SHARED)")
    return d


def bench_data() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pallet-bench"
    return Path(os.environ.get("BENCH_DATA", default))


def debian_mirror() -> str:
    """The mirror apt uses. corpus.sh finds it itself, but its grep fails (set -e + pipefail)
    on machines without /etc/apt/sources.list, so we pass it in."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for path in [*sorted(glob.glob("/etc/apt/sources.list.d/*.sources")), "/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        m = re.search(r"^(?:URIs:|deb)\s+(\S+/debian)\s*$", text, re.M) or re.search(
            r"^(?:URIs:|deb)\s+(\S+/debian)\s", text, re.M
        )
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def build_corpora(shared: Path, data: Path, corpora: list[str]) -> None:
    env = dict(os.environ, BENCH_DATA=str(data), DEBIAN_MIRROR=debian_mirror())
    log(f"corpora: {shared / 'corpus.sh'} {' '.join(corpora)} (BENCH_DATA={data})")
    subprocess.run(["bash", str(shared / "corpus.sh"), *corpora], env=env, check=True)


def tar_bytes(data: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(data / "corpus" / "stats.tsv") as f:
        head = f.readline().split()
        for line in f:
            row = dict(zip(head, line.split(), strict=False))
            out[row["corpus"]] = int(row["tar_bytes"])
    return out


def layout_layer(layout: Path, tag: str = "out") -> Path | None:
    """Path of the first layer blob of image ``tag`` in an OCI layout (umoci, buildah)."""
    try:
        index = json.loads((layout / "index.json").read_text())
        for m in index.get("manifests", []):
            ann = m.get("annotations") or {}
            if (
                ann.get("org.opencontainers.image.ref.name") in (tag, None)
                or len(index["manifests"]) == 1
            ):
                mf = layout / "blobs" / "sha256" / m["digest"].split(":")[1]
                layer = json.loads(mf.read_text())["layers"][0]["digest"]
                return layout / "blobs" / "sha256" / layer.split(":")[1]
    except (OSError, KeyError, IndexError, ValueError):
        return None
    return None


def setup_buildah(work: Path, root: Path) -> str | None:
    """A working container holding the corpus (untimed); returns the buildah command prefix."""
    base = work / "buildah-vfs"
    b = f"buildah --root {base}/root --runroot {base}/run --storage-driver vfs"
    subprocess.run(f"{b} rm --all >/dev/null 2>&1; rm -rf {base}", shell=True, check=False)
    r = subprocess.run(
        f"{b} from --name ctr-commit scratch >/dev/null && "
        f"{b} copy -q ctr-commit {shlex.quote(str(root))}/ / >/dev/null",
        shell=True,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        log(f"buildah setup failed, row skipped: {r.stderr.strip()[-300:]}")
        return None
    return b


def plan_row(
    rows: list[dict[str, object]],
    corpus: str,
    nbytes: int,
    name: str,
    group: str,
    cmd: str,
    prepare: str = "",
    note: str = "",
    output: str = "",
) -> None:
    """Append one benchmark to a plan; "output" (ours, ignored by bench_run.py) says where the
    result of the last run is found."""
    rows.append(
        {
            "name": name,
            "group": group,
            "corpus": corpus,
            "bytes": nbytes,
            "cmd": cmd,
            "prepare": prepare,
            "note": note,
            "output": output,
        }
    )


def plan_for(
    corpus: str, root: Path, work: Path, nbytes: int, *, buildah: bool, variants: bool
) -> list[dict[str, object]]:
    py = shlex.quote(sys.executable)
    layer = shlex.quote(str(REPO / "bench" / "pallet_layer.py"))
    r = shlex.quote(str(root))
    tar = f"tar -C {r} --numeric-owner -cf - ."
    rows: list[dict[str, object]] = []

    def add(
        name: str, group: str, cmd: str, prepare: str = "", note: str = "", output: str = ""
    ) -> None:
        plan_row(rows, corpus, nbytes, name, group, cmd, prepare, note, output)

    def pallet(name: str, key: str, args: str, note: str = "") -> None:
        store = work / f"store-{key}"
        res = work / f"{key}.json"
        add(
            name,
            "pallet",
            f"{py} {layer} {r} {store} {args} --out {res}",
            prepare=f"rm -rf {store} {res}",
            note=note,
            output=f"json:{res}",
        )

    add("limit: tar | pigz -6 -p2 | sha256sum", "limit", f"{tar} | pigz -6 -p 2 | sha256sum")
    add("limit: tar | zstd -3 -T2 | sha256sum", "limit", f"{tar} | zstd -q -3 -T2 | sha256sum")
    u = work / "u1"
    add(
        "umoci insert (dir -> new layer)",
        "peer",
        f"umoci insert --image {u}:base --tag out {r} /",
        prepare=f"rm -rf {u} && umoci init --layout {u} && umoci new --image {u}:base",
        output=f"layout:{u}",
    )
    if buildah:
        b = setup_buildah(work, root)
        if b:
            add(
                "buildah commit (vfs) -> oci: gzip",
                "peer",
                f"{b} commit -q --disable-compression=false ctr-commit oci:{work}/bc-vfs:out",
                prepare=f"rm -rf {work}/bc-vfs",
                output=f"layout:{work}/bc-vfs",
            )
    # the whole command a user runs: interpreter start, snapshot record, layer, config,
    # manifest, image record (or the OCI tarball), as `umoci insert` and `buildah commit` do
    cli = f"{py} -m pallet.cli"
    es = work / "store-export"
    add(
        "pallet export (CLI) -> store, gzip",
        "pallet",
        f"{cli} --root {es} export --layer {r} -t bench:1 --progress quiet",
        prepare=f"rm -rf {es}",
    )
    et = work / "export-oci.tar"
    add(
        "pallet export (CLI) -> OCI tarball, gzip",
        "pallet",
        f"{cli} --root {es}-t export --layer {r} -o type=oci,dest={et},name=bench:1 "
        "--progress quiet",
        prepare=f"rm -rf {es}-t {et}",
    )
    pallet("pallet gzip (level 3, threads 2)", "gzip", "--compression gzip")
    pallet("pallet zstd (level 3, threads 2)", "zstd", "--compression zstd")
    if variants:
        pallet("pallet gzip, 1 compression thread", "gzip-t1", "--compression gzip --threads 1")
        pallet(
            "pallet gzip, compress on producer thread",
            "gzip-inline",
            "--compression gzip --mode inline",
            note="no queue/consumer thread",
        )
        pallet(
            "pallet zstd, compress on producer thread",
            "zstd-inline",
            "--compression zstd --mode inline",
            note="no queue/consumer thread",
        )
        pallet("pallet gzip level 6 (zlib-ng)", "gzip-l6", "--compression gzip --level 6")
        pallet(
            "pallet gzip, tarfile producer", "gzip-tarfile", "--compression gzip --producer tarfile"
        )
    return rows


def output_size(output: str) -> int | None:
    kind, _, path = output.partition(":")
    try:
        if kind == "json":
            return int(json.loads(Path(path).read_text())["size"])
        if kind == "layout":
            lb = layout_layer(Path(path))
            return lb.stat().st_size if lb is not None else None
    except (OSError, KeyError, ValueError):
        return None
    return None


def checks(work: Path, root: Path, rows: list[dict[str, object]]) -> dict[str, object]:
    """Untimed correctness checks and the layer sizes of the last run of each row."""
    out: dict[str, object] = {}
    res = json.loads((work / "gzip.json").read_text())
    out["producer"] = res["producer"]
    blob = work / "store-gzip" / "blobs" / "sha256" / res["digest"].split(":")[1]
    t = subprocess.run(
        f"gzip -dc {blob} | tar -tf - | wc -l", shell=True, capture_output=True, text=True
    )
    out["tar_entries"] = t.stdout.strip() if t.returncode == 0 else f"FAILED {t.stderr}"
    again = work / "again.json"
    shutil.rmtree(work / "store-again", ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "pallet_layer.py"),
            str(root),
            str(work / "store-again"),
            "--compression",
            "gzip",
            "--threads",
            "1",
            "--out",
            str(again),
        ],
        check=True,
    )
    out["gzip_digest"] = res["digest"]
    out["reproduced"] = json.loads(again.read_text())["digest"] == res["digest"]
    shutil.rmtree(work / "store-again", ignore_errors=True)
    out["sizes"] = {str(r["name"]): output_size(str(r["output"])) for r in rows if r["output"]}
    return out


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


GZIP_ROW = "pallet gzip (level 3, threads 2)"
ZSTD_ROW = "pallet zstd (level 3, threads 2)"
REF_ROW = "limit: tar | pigz -6 -p2 | sha256sum"
ZSTD_LIMIT_ROW = "limit: tar | zstd -3 -T2 | sha256sum"
UMOCI_ROW = "umoci insert (dir -> new layer)"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def report(results: dict[str, dict[str, object]], meta: dict[str, object]) -> str:
    lines = [
        "# pallet benchmark run",
        "",
        f"- command: `{meta['command']}`",
        f"- started: {meta['started']} (UTC); {meta['rounds']} rounds "
        f"(+{meta['warmup']} warm-up), round-robin; medians of wall time",
        f"- load average at start: `{meta['loadavg']}`",
        "",
    ]
    targets: list[str] = []
    for corpus, data in results.items():
        rows: dict[str, dict[str, float]] = {r["name"]: r for r in data["results"]}  # type: ignore[attr-defined]
        chk: dict[str, object] = data["checks"]  # type: ignore[assignment]
        sizes: dict[str, int | None] = chk["sizes"]  # type: ignore[assignment]
        ref = rows.get(REF_ROW, {}).get("wall_median")
        um = rows.get(UMOCI_ROW, {}).get("wall_median")
        zl = rows.get(ZSTD_LIMIT_ROW, {}).get("wall_median")
        us = sizes.get(UMOCI_ROW)
        lines += [
            f"## {corpus}: {int(data['bytes']) / 1e6:.1f} MB tar stream "  # type: ignore[call-overload]
            f"(pallet producer: `{chk['producer']}`)",
            "",
            "| row | median wall s | min-max s | CPU s | max RSS MiB | MB/s | x ref (pigz) "
            "| x umoci | layer bytes | size x umoci |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            w = r.get("wall_median")
            shown = name.replace("|", "\\|")
            if w is None:
                lines.append(f"| {shown} | failed | | | | | | | | |")
                continue
            size = sizes.get(name)
            lines.append(
                f"| {shown} | {w:.3f} | {r['wall_min']:.2f}-{r['wall_max']:.2f} | "
                f"{r['cpu_median']:.2f} | {int(r['maxrss_kb']) // 1024} | "
                f"{r.get('mb_per_s', 0):.0f} | {fmt_ratio(w / ref if ref else None)} | "
                f"{fmt_ratio(w / um if um else None)} | {size if size else '-'} | "
                f"{fmt_ratio(size / us if size and us else None)} |"
            )
        lines += [
            "",
            f"Checks: pallet's gzip blob decompresses to a tar that GNU tar lists "
            f"({chk['tar_entries']} entries); its digest `{chk['gzip_digest']}` is "
            f"reproduced by a run with 1 compression thread: {chk['reproduced']}.",
            "",
        ]
        pg = rows.get(GZIP_ROW, {}).get("wall_median")
        pz = rows.get(ZSTD_ROW, {}).get("wall_median")
        if pg and um:
            gs = sizes.get(GZIP_ROW)
            sx = gs / us if gs and us else None
            targets.append(
                f"- {corpus}: gzip wall x umoci insert = {pg / um:.2f} (target <= 0.50: "
                f"{_verdict(pg / um <= 0.5)}); layer size x umoci = {fmt_ratio(sx)} "
                f"(target <= 1.10: {_verdict(sx is not None and sx <= 1.10)})"
            )
        if pz and zl:
            targets.append(
                f"- {corpus}: zstd wall x `tar | zstd -3 -T2 | sha256sum` = {pz / zl:.2f} "
                f"(target <= 1.20: {_verdict(pz / zl <= 1.2)})"
            )
        if corpus == "bigfiles":
            rss = (
                max(
                    (int(r.get("maxrss_kb", 0)) for n, r in rows.items() if n.startswith("pallet")),
                    default=0,
                )
                // 1024
            )
            targets.append(
                f"- bigfiles: peak RSS of any pallet row = {rss} MiB "
                f"(target < 150: {_verdict(rss < 150)})"
            )
    lines += ["## Targets", "", *targets, ""]
    return "\n".join(lines)


# --- unpack (--set unpack) ----------------------------------------------------------------------
UNPACK_UMOCI_ROW = "umoci raw unpack"
UNPACK_PIGZ_ROW = "pigz -d | tar -x"
UNPACK_LIB_ROW = "pallet apply (decompressed_reader + apply_tar)"
UNPACK_CLI_ROW = "pallet unpack (CLI, image in a store)"
UNPACK_TAG = "unpack"
UNPACK_REF = "bench:unpack"


def sh(cmd: str) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"command failed (rc={r.returncode}): {cmd}\n{r.stderr[-2000:]}")
    return r.stdout


def layout_image(layout: Path, tag: str) -> tuple[Path, str]:
    """(layer blob, diff ID) of the one-layer image ``tag`` of an OCI layout."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    for m in index.get("manifests", []):
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag:
            continue
        mf = json.loads((blobs / m["digest"].split(":")[1]).read_text())
        if len(mf["layers"]) != 1:
            raise SystemExit(f"{layout}:{tag}: {len(mf['layers'])} layers, expected 1")
        cfg = json.loads((blobs / mf["config"]["digest"].split(":")[1]).read_text())
        blob = blobs / mf["layers"][0]["digest"].split(":")[1]
        return blob, str(cfg["rootfs"]["diff_ids"][0])
    raise SystemExit(f"{layout}: no image tagged {tag}")


def prepare_unpack(corpus: str, root: Path, work: Path, source: str) -> dict[str, str]:
    """Untimed: the corpus as one gzip layer in an OCI layout (made by ``umoci insert`` or by
    ``pallet export``), and the same layout loaded into a pallet store. All unpack rows read
    that one blob (the store holds a copy with the same digest)."""
    py = shlex.quote(sys.executable)
    src = work / "unpack-src"
    lay, store = src / "layout", src / "store"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    r = shlex.quote(str(root))
    if source == "umoci":
        sh(
            f"umoci init --layout {lay} && umoci new --image {lay}:base && "
            f"umoci insert --image {lay}:base --tag {UNPACK_TAG} {r} / && "
            f"umoci rm --image {lay}:base && umoci gc --layout {lay}"
        )
        tag, made_by = UNPACK_TAG, "`umoci insert` (umoci's own gzip layer)"
    else:
        sh(
            f"{py} -m pallet.cli --root {src}/export-store export --layer {r} "
            f"-o type=oci,tar=false,dest={lay},name={UNPACK_TAG} --progress quiet"
        )
        shutil.rmtree(src / "export-store")
        tag, made_by = "latest", "`pallet export` (pallet's gzip layer, level 3)"
    sh(f"{py} -m pallet.cli --root {store} load -i {lay} --tag {UNPACK_REF}")
    blob, diff_id = layout_image(lay, tag)
    if f"sha256:{blob.name}" not in sh(f"{py} -m pallet.cli --root {store} content ls"):
        raise SystemExit(f"{store}: layer sha256:{blob.name} missing after load")
    tar_size = int(sh(f"pigz -dc {blob} | wc -c").strip())
    # umoci 0.4.7's `insert` writes pyapp and bigfiles layers whose tar stream stops right after
    # the last file's data: no padding to 512 bytes, no end-of-archive blocks (the diff ID covers
    # the short stream). `umoci raw unpack` accepts them, GNU tar and pallet refuse them.
    t = subprocess.run(f"pigz -dc {blob} | tar -tf - >/dev/null", shell=True, capture_output=True)
    if t.returncode != 0:
        raise SystemExit(
            f"{corpus}: the layer made by {made_by} is not a complete tar archive "
            f"({t.stderr.decode().strip()[-200:]}); use --unpack-layer pallet"
        )
    return {
        "layout": str(lay),
        "tag": tag,
        "blob": str(blob),
        "digest": f"sha256:{blob.name}",
        "blob_bytes": str(blob.stat().st_size),
        "tar_bytes": str(tar_size),
        "diff_id": diff_id,
        "store": str(store),
        "made_by": made_by,
    }


def unpack_dests(corpus: str, work: Path, dest_dir: str | None) -> dict[str, Path]:
    base = Path(dest_dir) / corpus if dest_dir else work / "unpack-dest"
    keys = {
        UNPACK_UMOCI_ROW: "umoci",
        UNPACK_PIGZ_ROW: "pigz-tar",
        UNPACK_LIB_ROW: "pallet-apply",
        UNPACK_CLI_ROW: "pallet-cli",
    }
    return {name: base / key for name, key in keys.items()}


def plan_unpack(
    corpus: str, prep: dict[str, str], dests: dict[str, Path]
) -> list[dict[str, object]]:
    py = shlex.quote(sys.executable)
    script = shlex.quote(str(REPO / "bench" / "pallet_unpack.py"))
    blob, nbytes = prep["blob"], int(prep["tar_bytes"])
    rows: list[dict[str, object]] = []

    def add(name: str, group: str, cmd: str, note: str = "") -> None:
        d = dests.get(name)
        # Every run starts from an empty DEST with no dirty pages left by earlier runs. Caveat
        # (README): on ext4 without a journal, inode allocation skips, with one inode table
        # lookup each, the inodes freed in the last 30 s (fs/ext4/ialloc.c recently_deleted()).
        prepare = f"rm -rf {d} && mkdir -p {d} && sync" if d else ""
        plan_row(rows, corpus, nbytes, name, group, cmd, prepare, note, f"dir:{d}" if d else "")

    add("limit: pigz -d > /dev/null", "limit", f"pigz -d -c {blob} > /dev/null")
    add(
        "limit: pallet decompress + sha256, no writes",
        "limit",
        f"{py} {script} {blob} - --stage decompress --diff-id {prep['diff_id']}",
    )
    d = dests
    add(
        UNPACK_UMOCI_ROW,
        "peer",
        f"umoci raw unpack --image {prep['layout']}:{prep['tag']} {d[UNPACK_UMOCI_ROW]}",
    )
    add(
        UNPACK_PIGZ_ROW,
        "peer",
        f"pigz -d -c {blob} | tar -x -C {d[UNPACK_PIGZ_ROW]} --numeric-owner",
    )
    add(
        UNPACK_LIB_ROW,
        "pallet",
        f"{py} {script} {blob} {d[UNPACK_LIB_ROW]} --diff-id {prep['diff_id']}",
        note="the per-layer code of `pallet unpack`, without store and image lookup",
    )
    add(
        UNPACK_CLI_ROW,
        "pallet",
        f"{py} -m pallet.cli --root {prep['store']} unpack {UNPACK_REF} {d[UNPACK_CLI_ROW]}",
    )
    return rows


def tree_listing(root: Path) -> dict[str, tuple[object, ...]]:
    """path -> (type, mode, uid, gid, size, mtime s, link target, nlink, xattrs, sha256)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else dirnames + filenames:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            fmt = stat.S_IFMT(st.st_mode)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            try:
                xattrs = tuple(
                    sorted(
                        (k, os.getxattr(path, k, follow_symlinks=False))
                        for k in os.listxattr(path, follow_symlinks=False)
                    )
                )
            except OSError:
                xattrs = ()
            nlink = st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0
            out[os.path.relpath(path, root)] = (
                fmt,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                int(st.st_mtime),
                link,
                nlink,
                xattrs,
                digest,
            )
    return out


TREE_FIELDS = ("type", "mode", "uid", "gid", "size", "mtime", "link", "nlink", "xattrs", "data")


def compare_trees(ref: dict[str, tuple[object, ...]], other: dict[str, tuple[object, ...]]) -> str:
    missing = sorted(set(ref) - set(other))
    extra = sorted(set(other) - set(ref))
    fields: dict[str, list[str]] = {}
    for path in sorted(set(ref) & set(other)):
        for f, a, b in zip(TREE_FIELDS, ref[path], other[path], strict=True):
            if a != b:
                fields.setdefault(f, []).append(path)
    if not (missing or extra or fields):
        return "identical"
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. `{missing[0]}`)")
    if extra:
        parts.append(f"{len(extra)} extra (e.g. `{extra[0]}`)")
    for f, paths in fields.items():
        parts.append(f"{f} differs on {len(paths)} (e.g. `{paths[0]}`)")
    return "; ".join(parts)


def checks_unpack(dests: dict[str, Path]) -> dict[str, object]:
    """Untimed: the trees the last run of each row left, compared with `pigz -d | tar -x`'s."""
    lists = {}
    for name, d in dests.items():
        try:
            lists[name] = tree_listing(d)
        except OSError as exc:
            log(f"tree of {name} ({d}): {exc}")
    ref = lists.get(UNPACK_PIGZ_ROW)
    out: dict[str, object] = {"entries": len(ref) if ref else None, "vs_tar": {}}
    if ref is not None:
        out["vs_tar"] = {n: compare_trees(ref, t) for n, t in lists.items() if n != UNPACK_PIGZ_ROW}
    return out


def dest_filesystem(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["findmnt", "-n", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "--target", str(path)],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() or "unknown"


def report_unpack(results: dict[str, dict[str, object]], meta: dict[str, object]) -> str:
    lines = [
        "# pallet unpack benchmark run",
        "",
        f"- command: `{meta['command']}`",
        f"- started: {meta['started']} (UTC); {meta['rounds']} rounds "
        f"(+{meta['warmup']} warm-up), round-robin; medians of wall time",
        f"- load average at start: `{meta['loadavg']}`",
        f"- running as uid {os.geteuid()}; DEST is an empty directory before every run "
        "(`rm -rf DEST && mkdir -p DEST && sync`, untimed); no row fsyncs, so the times are to "
        "the page cache",
        "",
    ]
    targets: list[str] = []
    for corpus, data in results.items():
        rows: dict[str, dict[str, float]] = {r["name"]: r for r in data["results"]}  # type: ignore[attr-defined]
        prep: dict[str, str] = data["prep"]  # type: ignore[assignment]
        chk: dict[str, object] = data["checks"]  # type: ignore[assignment]
        um = rows.get(UNPACK_UMOCI_ROW, {}).get("wall_median")
        pt = rows.get(UNPACK_PIGZ_ROW, {}).get("wall_median")
        lines += [
            f"## {corpus}: one gzip layer, {int(prep['blob_bytes']) / 1e6:.1f} MB -> "
            f"{int(prep['tar_bytes']) / 1e6:.1f} MB tar, made by {prep['made_by']}",
            "",
            f"- layer `{prep['digest']}` (diff ID `{prep['diff_id']}`), read by every row",
            f"- DEST filesystem: `{data['dest_fs']}`",
            "",
            "| row | median wall s | min-max s | CPU s | max RSS MiB | MB/s (tar) "
            "| x umoci raw unpack | x pigz -d \\| tar -x |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            w = r.get("wall_median")
            shown = name.replace("|", "\\|")
            if w is None:
                lines.append(f"| {shown} | failed | | | | | | |")
                continue
            lines.append(
                f"| {shown} | {w:.3f} | {r['wall_min']:.2f}-{r['wall_max']:.2f} | "
                f"{r['cpu_median']:.2f} | {int(r['maxrss_kb']) // 1024} | "
                f"{r.get('mb_per_s', 0):.0f} | {fmt_ratio(w / um if um else None)} | "
                f"{fmt_ratio(w / pt if pt else None)} |"
            )
        vs: dict[str, str] = chk["vs_tar"]  # type: ignore[assignment]
        lines += [
            "",
            f"Trees left by the last run, against `pigz -d | tar -x` ({chk['entries']} "
            "entries; type, mode, owner, size, mtime, link, nlink, xattrs, sha256):",
            "",
        ]
        lines += [f"- {n}: {v}" for n, v in vs.items()]
        lines.append("")
        for name, what in ((UNPACK_CLI_ROW, "pallet unpack"), (UNPACK_LIB_ROW, "pallet apply")):
            w = rows.get(name, {}).get("wall_median")
            if w and um:
                targets.append(
                    f"- {corpus}: {what} wall x umoci raw unpack = {w / um:.2f} "
                    f"(target <= 0.5: {_verdict(w / um <= 0.5)})"
                    + ("" if name == UNPACK_CLI_ROW else " (library path, for reference)")
                )
    lines += ["## Targets", "", *targets, ""]
    return "\n".join(lines)


def run_plan(
    shared: Path, out_dir: Path, corpus: str, rows: list[dict[str, object]], a: argparse.Namespace
) -> dict[str, object]:
    plan = out_dir / f"plan-{corpus}.jsonl"
    plan.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res_path = out_dir / f"run-{corpus}.json"
    log(f"{corpus}: {len(rows)} rows, {a.warmup} warm-up + {a.rounds} rounds")
    cmd = [
        sys.executable,
        str(shared / "bench_run.py"),
        str(plan),
        str(res_path),
        "--rounds",
        str(a.rounds),
        "--warmup",
        str(a.warmup),
    ]
    if a.only:
        cmd += ["--only", a.only]
    subprocess.run(cmd, check=True)
    return json.loads(res_path.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="*", default=CORPORA)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", default=None, help="regex on row names")
    ap.add_argument("--no-buildah", action="store_true")
    ap.add_argument("--skip-corpus", action="store_true", help="do not run corpus.sh")
    ap.add_argument("--set", default="main", choices=["main", "variants", "unpack"])
    ap.add_argument(
        "--unpack-layer",
        default="pallet",
        choices=["pallet", "umoci"],
        help="--set unpack: the layer all rows unpack, made by pallet export (default) or umoci "
        "insert (umoci 0.4.7 truncates the pyapp and bigfiles layers)",
    )
    ap.add_argument(
        "--unpack-dest",
        default=None,
        metavar="DIR",
        help="--set unpack: DESTs under DIR/<corpus>/ (default $BENCH_DATA/work-pallet/<corpus>/"
        "unpack-dest, i.e. the file system of $BENCH_DATA)",
    )
    a = ap.parse_args()
    # an installed pallet has its bytecode compiled (pip does that); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would recompile every edited module in every timed process
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True)
    shared = shared_dir()
    data = bench_data()
    if not a.skip_corpus:
        build_corpora(shared, data, a.corpora)
    sizes = tar_bytes(data)
    started = dt.datetime.now(dt.UTC)
    out_dir = data / "results-pallet" / started.strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "bench/run.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"),
        "rounds": a.rounds,
        "warmup": a.warmup,
        "loadavg": Path("/proc/loadavg").read_text().strip(),
    }
    results: dict[str, dict[str, object]] = {}
    for corpus in a.corpora:
        root = data / "corpus" / corpus
        work = data / "work-pallet" / corpus
        work.mkdir(parents=True, exist_ok=True)
        if a.set == "unpack":
            log(f"{corpus}: preparing the layer ({a.unpack_layer}) and the pallet store")
            prep = prepare_unpack(corpus, root, work, a.unpack_layer)
            dests = unpack_dests(corpus, work, a.unpack_dest)
            base = next(iter(dests.values())).parent
            rows = plan_unpack(corpus, prep, dests)
            run = run_plan(shared, out_dir, corpus, rows, a)
            results[corpus] = {
                "results": run["results"],
                "prep": prep,
                "dest_fs": dest_filesystem(base),
                "checks": checks_unpack(dests),
            }
            continue
        rows = plan_for(
            corpus,
            root,
            work,
            sizes[corpus],
            buildah=not a.no_buildah,
            variants=a.set == "variants",
        )
        run = run_plan(shared, out_dir, corpus, rows, a)
        results[corpus] = {
            "bytes": sizes[corpus],
            "results": run["results"],
            "checks": checks(work, root, rows),
        }
    md = report_unpack(results, meta) if a.set == "unpack" else report(results, meta)
    (out_dir / "report.md").write_text(md)
    (out_dir / "summary.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1, default=str)
    )
    print(md)
    log(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
