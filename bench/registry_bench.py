#!/usr/bin/env python3
"""Push to and pull from a real local registry: ``pallet push``/``pull`` against ``skopeo copy``.

usage: .venv/bin/python bench/registry_bench.py DIR [DIR...] [--rounds N] [--help-runs N]
           [--no-pycache] [--pallet NAME=SRC ...] [--out RESULT.json]

``DIR`` is a root filesystem tree, e.g. a corpus of the shared ``corpus.sh``
(``$BENCH_DATA/corpus/{debian,pyapp,bigfiles}``, default ``~/.cache/pallet-bench``); any small
tree works for a smoke run. Needs Debian's ``docker-registry`` (distribution 2.8) and ``skopeo``.

Untimed, per DIR: the image is built once into a private pallet store with ``pallet export
--rootfs DIR -t bench/img:1`` (``SOURCE_DATE_EPOCH`` fixed) and written by ``pallet save`` as an
OCI layout for skopeo, so both tools push the identical blobs and manifest.

Rows, round-robin (``--rounds``, default 3, plus one untimed warm-up; the order of the two tools
alternates between rounds). In every round each tool gets its OWN FRESH ``docker-registry``
(empty storage in a temp dir, a port never used before in this run) and a fresh repository name,
so nothing can be found, mounted or deduplicated from an earlier row, and neither pallet's
distribution-source labels nor skopeo's blob-info cache name a repository on that registry:

* ``push``: the first push into the empty registry, ``pallet push bench/img:1 HOST/REPO:1
  --insecure --progress quiet`` vs ``skopeo copy --quiet --dest-tls-verify=false oci:LAYOUT:1
  docker://HOST/REPO:1``;
* ``push again``: the same command once more into the same repository (all blobs present);
* ``pull``: ``pallet --root FRESH pull HOST/REPO:1 --insecure --progress quiet`` (an empty,
  not yet created store) vs ``skopeo copy --quiet --src-tls-verify=false docker://HOST/REPO:1
  oci:FRESHDIR:1``; each tool pulls what it pushed itself.

Two things would otherwise make the rows unlike a real run, so both are handled untimed. After a
push pallet records a ``containerd.io/distribution.source.127.0.0.1`` label on its blobs
(containerd's key drops the port), so the next first push to any 127.0.0.1 registry would first
try, and fail, to mount from up to three repositories of earlier rounds' registries: before every
round the bench clears that label on the image's blobs (``pallet content label DIGEST KEY=``).
And this environment may set ``PYTHONDONTWRITEBYTECODE``, which makes every pallet process compile
its sources again (an installed pallet has its bytecode): by default pallet runs with
``PYTHONPYCACHEPREFIX`` in the bench's work directory (bytecode cached outside the checkout,
written by the untimed build and warm-up) and without ``PYTHONDONTWRITEBYTECODE``;
``--no-pycache`` keeps the caller's environment. skopeo's blob-info cache is keyed by host and
port, so the fresh ports leave it nothing to reuse.

``--pallet NAME=SRC`` (repeatable) times several pallet source trees in the same run, e.g. a
change against ``git archive``'s copy of the commit before it: each is a tool of its own with
its own registry and repository per round, labelled ``NAME``, and each is compared with skopeo
and with the first one (the ratio of medians, and the median of the per-round ratios: the tools
of a round run back to back, so each pair shares the machine's load). Without it, the one tool
``pallet`` is this checkout's ``src``. The image is built, and ``pallet --help`` timed, with the
first tree.

After the rows (untimed) each registry must hold the image's manifest digest under the tag
(``HEAD /v2/REPO/manifests/1`` and a digest of the body), and each pull must have produced it.
``pallet --help`` (the console script) is timed ``--help-runs`` times per round.

Every command is timed by ``time.perf_counter`` around ``subprocess.run``. Output: a markdown
table of median wall seconds (min-max) and ratios pallet/skopeo with the project's targets
(first push and pull at most 1.0x skopeo; push again at most skopeo + 0.1 s; ``pallet --help``
under 0.1 s); ``--out`` also writes JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
NAME = "bench/img:1"
TAG = "1"
#: fixed, so the one image of a DIR has one digest
EPOCH = "1700000000"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
PHASES = ("push", "push again", "pull")
#: the pallet source trees timed, by label (``--pallet``); the first one builds the image
PALLETS: dict[str, Path] = {"pallet": SRC}


def tools() -> tuple[str, ...]:
    return (*PALLETS, "skopeo")


#: where pallet's bytecode is cached (None: the caller's environment decides)
PYCACHE: Path | None = None


def env(src: Path | None = None) -> dict[str, str]:
    e = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    src = src if src is not None else next(iter(PALLETS.values()))
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), e.get("PYTHONPATH")]))
    if PYCACHE is not None:
        e.pop("PYTHONDONTWRITEBYTECODE", None)
        e["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return e


def pallet_argv() -> list[str]:
    """The ``pallet`` console script next to this interpreter, else ``python -m pallet.cli``."""
    script = Path(sys.executable).parent / "pallet"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pallet.cli"]


def run(argv: list[str], what: str, src: Path | None = None) -> tuple[float, str]:
    """Run ``argv`` (pallet from ``src``, else the first tree); (wall seconds, stdout). Fails
    the benchmark on a non-zero exit."""
    e = env(src)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=e, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{what} failed ({r.returncode}): {' '.join(argv)}\n{r.stderr.strip()}")
    return dt, r.stdout


# -- a private registry --------------------------------------------------------------------------
_used_ports: set[int] = set()


def fresh_port() -> int:
    """A free port on 127.0.0.1 that no registry of this run has used."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise SystemExit("no unused free port")


def registry_binary() -> str:
    for name in ("docker-registry", "registry"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")


class Registry:
    """``docker-registry serve`` on 127.0.0.1 with empty storage in a temp dir; stopped by PID."""

    def __init__(self, work: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="registry-", dir=work))
        binary = registry_binary()
        for _ in range(3):  # the port may be taken between probe and bind
            self.port = fresh_port()
            self.host = f"127.0.0.1:{self.port}"
            cfg = self.dir / "config.yml"
            cfg.write_text(
                "\n".join(
                    [
                        "version: 0.1",
                        "log:",
                        "  level: warn",
                        "  accesslog:",
                        "    disabled: true",
                        "storage:",
                        "  filesystem:",
                        f"    rootdirectory: {self.dir / 'data'}",
                        "  delete:",
                        "    enabled: true",
                        "  cache:",
                        "    blobdescriptor: inmemory",
                        "  maintenance:",
                        "    uploadpurging:",
                        "      enabled: false",
                        "http:",
                        f"  addr: {self.host}",
                        "  secret: bench-not-secret",
                        "",
                    ]
                )
            )
            with open(self.dir / "registry.log", "ab") as log:
                self.proc = subprocess.Popen(
                    [binary, "serve", str(cfg)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
                    start_new_session=True,
                )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                        r.read()
                    return
                except OSError:
                    time.sleep(0.02)
            self._kill()
        log_text = (self.dir / "registry.log").read_text(errors="replace")
        shutil.rmtree(self.dir, ignore_errors=True)
        raise SystemExit(f"docker-registry did not start:\n{log_text[-2000:]}")

    def manifest_digest(self, repo: str, tag: str) -> tuple[str, str]:
        """(``Docker-Content-Digest`` of HEAD, sha256 of the GET body) of ``repo:tag``."""
        url = f"http://{self.host}/v2/{repo}/manifests/{tag}"
        head = urllib.request.Request(url, method="HEAD", headers={"Accept": ACCEPT})
        with urllib.request.urlopen(head, timeout=10) as r:
            header = r.headers.get("Docker-Content-Digest", "")
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"Accept": ACCEPT}), timeout=10
        ) as r:
            body = r.read()
        return header, "sha256:" + hashlib.sha256(body).hexdigest()

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # this PID only
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the image -----------------------------------------------------------------------------------
def build(tree: str, work: Path) -> dict[str, Any]:
    """Export ``tree`` into a private store and save it as an OCI layout (untimed)."""
    store = work / "store"
    layout = work / "layout"
    _, out = run(
        [
            sys.executable,
            "-m",
            "pallet.cli",
            "--root",
            str(store),
            "export",
            "--rootfs",
            tree,
            "-t",
            NAME,
            "--progress",
            "quiet",
        ],
        "pallet export",
    )
    want = out.split()[0]
    tar = work / "img.tar"
    run(
        [sys.executable, "-m", "pallet.cli", "--root", str(store), "save", NAME, "-o", str(tar)],
        "pallet save",
    )
    layout.mkdir()
    with tarfile.open(tar) as t:
        t.extractall(layout, filter="data")
    tar.unlink()
    index = json.loads((layout / "index.json").read_text())
    (m,) = index["manifests"]
    ref = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
    if m["digest"] != want or ref != TAG:
        raise SystemExit(f"layout index {m}: want {want} tagged {TAG!r}")
    algo, hexd = want.split(":")
    manifest = json.loads((layout / "blobs" / algo / hexd).read_bytes())
    layers = manifest.get("layers", [])
    return {
        "store": store,
        "layout": layout,
        "digest": want,
        "blobs": [want, manifest["config"]["digest"], *(x["digest"] for x in layers)],
        "layers": len(layers),
        "layer_bytes": sum(int(x["size"]) for x in layers),
    }


#: the label pallet's pusher reads mount sources for 127.0.0.1 from (containerd drops the port)
SOURCE_LABEL = "containerd.io/distribution.source.127.0.0.1"


def forget_sources(img: dict[str, Any]) -> None:
    """Clear the distribution-source label of the image's blobs in pallet's store (untimed)."""
    for d in img["blobs"]:
        argv = [sys.executable, "-m", "pallet.cli", "--root", str(img["store"]), "content"]
        run([*argv, "label", d, f"{SOURCE_LABEL}="], "pallet content label")


# -- rows ----------------------------------------------------------------------------------------
def push_cmd(tool: str, img: dict[str, Any], dest: str) -> list[str]:
    if tool in PALLETS:
        return [
            *pallet_argv(),
            "--root",
            str(img["store"]),
            "push",
            NAME,
            dest,
            "--insecure",
            "--progress",
            "quiet",
        ]
    return [
        "skopeo",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        f"oci:{img['layout']}:{TAG}",
        f"docker://{dest}",
    ]


def pull_cmd(tool: str, src: str, into: Path) -> list[str]:
    if tool in PALLETS:
        return [
            *pallet_argv(),
            "--root",
            str(into),
            "pull",
            src,
            "--insecure",
            "--progress",
            "quiet",
        ]
    return [
        "skopeo",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        f"docker://{src}",
        f"oci:{into}:{TAG}",
    ]


def check_pull(tool: str, out: str, into: Path, want: str) -> None:
    if tool in PALLETS:
        got = out.split()[-1] if out.split() else ""
    else:
        (m,) = json.loads((into / "index.json").read_text())["manifests"]
        got = m["digest"]
    if got != want:
        raise SystemExit(f"{tool} pull into {into}: {got}, want {want}")


def stats(v: list[float]) -> dict[str, float]:
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def bench_dir(tree: str, rounds: int, help_runs: int, work_root: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="registry-bench-", dir=work_root))
    names = tools()
    times: dict[str, dict[str, list[float]]] = {p: {t: [] for t in names} for p in PHASES}
    help_times: list[float] = []
    checked: list[dict[str, str]] = []
    try:
        img = build(tree, work)
        want = img["digest"]
        for r in range(rounds + 1):
            order = names if r % 2 == 0 else names[::-1]
            regs: dict[str, Registry] = {}
            try:
                for t in order:
                    regs[t] = Registry(work)
                refs = {t: f"{regs[t].host}/bench/{t}-r{r}-{uuid.uuid4().hex[:8]}" for t in names}
                pulled = {t: work / f"pull-{t}-r{r}" for t in names}
                for phase in PHASES:
                    for t in order:
                        dest = f"{refs[t]}:{TAG}"
                        src = PALLETS.get(t)
                        if phase == "push" and src is not None:
                            forget_sources(img)
                        if phase == "pull":
                            dt, out = run(pull_cmd(t, dest, pulled[t]), f"{t} {phase}", src)
                            check_pull(t, out, pulled[t], want)
                        else:
                            dt, _ = run(push_cmd(t, img, dest), f"{t} {phase}", src)
                        if r:  # round 0 warms the page cache
                            times[phase][t].append(dt)
                for t in names:  # untimed: the registry holds the image under the tag
                    repo = refs[t].split("/", 1)[1]
                    header, body = regs[t].manifest_digest(repo, TAG)
                    if header != want or body != want:
                        raise SystemExit(f"{t}: registry has {header} (body {body}), want {want}")
                    checked.append({"tool": t, "round": str(r), "digest": header})
                for _ in range(help_runs):
                    dt, _ = run([*pallet_argv(), "--help"], "pallet --help")
                    if r:
                        help_times.append(dt)
            finally:
                for reg in regs.values():
                    reg.stop()
                for t in names:
                    shutil.rmtree(work / f"pull-{t}-r{r}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows: dict[str, Any] = {}
    first = next(iter(PALLETS))
    for phase in PHASES:
        s = stats(times[phase]["skopeo"])
        for name in PALLETS:
            p = stats(times[phase][name])
            ratio = p["median"] / s["median"]
            if phase == "push again":
                target, met = "<= skopeo + 0.1 s", p["median"] <= s["median"] + 0.1
            else:
                target, met = "<= 1.0x", ratio <= 1.0
            key = f"{phase} [{name}]" if len(PALLETS) > 1 else phase
            rows[key] = {
                "phase": phase,
                "variant": name,
                "pallet": p,
                "skopeo": s,
                "ratio": ratio,
                "diff_s": p["median"] - s["median"],
                "vs_first": p["median"] / stats(times[phase][first])["median"],
                # rounds run the tools back to back: per-round ratios share the machine's load
                "vs_first_paired": statistics.median(
                    a / b for a, b in zip(times[phase][name], times[phase][first], strict=True)
                ),
                "target": target,
                "met": met,
            }
    h = stats(help_times)
    return {
        "dir": tree,
        "digest": want,
        "layers": img["layers"],
        "layer_bytes": img["layer_bytes"],
        "rounds": rounds,
        "times": times,
        "rows": rows,
        "help": {**h, "times": help_times, "target": "< 0.1 s", "met": h["median"] < 0.1},
        "registry_digests_checked": len(checked),
    }


def fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


def yes_no(b: bool) -> str:
    return "yes" if b else "NO"


def table(results: list[dict[str, Any]]) -> str:
    several = len(PALLETS) > 1
    first = next(iter(PALLETS))
    extra_head = f" ÷ {first} | ÷ {first}, paired |" if several else ""
    lines = [
        "| corpus | layer MiB | row | pallet s | skopeo s | pallet/skopeo | target | met |"
        + extra_head,
        "|---|---:|---|---:|---:|---:|---|---|" + ("---:|---:|" if several else ""),
    ]
    for res in results:
        name = Path(res["dir"]).name
        mib = f"{res['layer_bytes'] / 2**20:.1f}"
        for label, row in res["rows"].items():
            extra = f" ({row['diff_s']:+.3f} s)" if row["phase"] == "push again" else ""
            lines.append(
                f"| {name} | {mib} | {label} | {fmt(row['pallet'])} | {fmt(row['skopeo'])}"
                f" | {row['ratio']:.2f}{extra} | {row['target']} | {yes_no(row['met'])} |"
                + (f" {row['vs_first']:.3f} | {row['vs_first_paired']:.3f} |" if several else "")
            )
        h = res["help"]
        lines.append(
            f"| {name} | | pallet --help | {fmt(h)} | | | {h['target']} | {yes_no(h['met'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", metavar="DIR")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (plus one warm-up)")
    ap.add_argument("--help-runs", type=int, default=5, help="pallet --help runs per round")
    ap.add_argument(
        "--no-pycache",
        action="store_true",
        help="run pallet with the caller's bytecode settings (default: a private bytecode cache)",
    )
    ap.add_argument(
        "--pallet",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="time the pallet of source tree SRC as tool NAME (repeatable; default: this checkout)",
    )
    ap.add_argument("--out", help="also write the results as JSON here")
    a = ap.parse_args()
    if a.rounds < 1 or a.help_runs < 1:
        raise SystemExit("--rounds and --help-runs must be at least 1")
    if a.pallet:
        PALLETS.clear()
        for spec in a.pallet:
            name, sep, src = spec.partition("=")
            if not sep or not name or name == "skopeo" or name in PALLETS:
                raise SystemExit(f"--pallet {spec!r}: want NAME=SRC, names unique, not skopeo")
            if not (Path(src) / "pallet" / "__init__.py").is_file():
                raise SystemExit(f"--pallet {spec!r}: {src} holds no pallet package")
            PALLETS[name] = Path(src).resolve()
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed")
    bench_data = Path(os.environ.get("BENCH_DATA", Path.home() / ".cache" / "pallet-bench"))
    work_root = bench_data / "work-pallet"
    work_root.mkdir(parents=True, exist_ok=True)
    global PYCACHE
    if not a.no_pycache:
        PYCACHE = work_root / "registry-bench-pycache"
    results = []
    for tree in a.dirs:
        t0 = time.monotonic()
        res = bench_dir(tree, a.rounds, a.help_runs, work_root)
        res["pycache"] = str(PYCACHE) if PYCACHE else None
        res["pallets"] = {k: str(v) for k, v in PALLETS.items()}
        results.append(res)
        print(f"# {tree}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print(table(results))
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
