#!/usr/bin/env python3
"""One blob upload, in-process, under several chunk schedules, against a real local registry.

usage: .venv/bin/python bench/registry_chunks.py [--mib N ...] [--rounds R] [--out R.json]

What ``registry_bench.py`` cannot separate from process start-up and machine noise: what the
requests of a chunked upload cost against one ``PUT``. One ``docker-registry`` (distribution
2.8, empty storage in a temp dir) serves the whole run; every upload is a fresh random blob
(a new digest, so nothing is deduplicated) into a fresh repository, pushed by
``pallet.remote.protocol.upload_blob`` through one ``Session`` (HEAD, POST, then the schedule's
requests). The schedules of a size run one after the other in each round, their order rotated
between rounds; one untimed warm-up round first.

Schedules (``Options`` fields; sizes in MiB):

* ``put``: one ``PUT`` whatever the size (what pallet sent up to 128 MiB before);
* ``fixed32``: 32 MiB chunks, the last in the closing ``PUT`` (what pallet sent above 128 MiB,
  with an empty closing ``PUT`` then);
* ``fixed16``: 16 MiB chunks;
* ``grow``: the defaults, 16 MiB then doubling up to 128 MiB.

Output: a markdown table of median milliseconds (min-max) per schedule and size, the number of
data requests, each median divided by ``put``'s, and the median of the per-round ratios to
``put`` (the uploads of a round run back to back, so the pairs share the machine's load). On a
shared machine the wall times move with other processes' load; the CPU seconds that the
registry and this process used per upload (``/proc``) move much less, and show what each
request costs on either side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry_bench import Registry

from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest, Digester
from pallet.remote import Options
from pallet.remote.client import Session
from pallet.remote.protocol import Flow, PushOutcome, Request, upload_blob

MiB = 1 << 20
T = TypeVar("T")
SCHEDULES: dict[str, dict[str, int]] = {
    "put": {"monolithic_max": 1 << 40},
    "fixed32": {"chunk_size": 32 * MiB, "chunk_max": 32 * MiB, "monolithic_max": 0},
    "fixed16": {"chunk_size": 16 * MiB, "chunk_max": 16 * MiB, "monolithic_max": 0},
    "grow": {},
}


def registry_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counted(flow: Flow[T], seen: list[str]) -> Flow[T]:
    """``flow``, noting the method of every request it makes."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Request):
                seen.append(step.method)
            try:
                resp = yield step
            except Exception as exc:  # a lost connection, thrown in by the driver
                step = flow.throw(exc)
            else:
                step = flow.send(resp)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def one(
    session: Session, base: str, repo: str, blob: memoryview, o: Options, pid: int
) -> tuple[float, float, float, int]:
    """(wall, registry CPU, own CPU) seconds of one upload, and its data requests."""
    h = Digester("sha256")
    h.update(blob)
    desc = Descriptor(media_type=mt.OCI_LAYER, digest=Digest(h.digest()), size=len(blob))

    def body(offset: int, length: int) -> Iterator[bytes]:
        end = offset + length
        while offset < end:  # 1 MiB pieces, as the pusher reads the store
            n = min(MiB, end - offset)
            yield bytes(blob[offset : offset + n])
            offset += n

    seen: list[str] = []
    flow = upload_blob(
        base,
        repo,
        desc,
        body,
        chunk_size=o.chunk_size,
        chunk_max=o.chunk_max,
        monolithic_max=o.monolithic_max,
        policy=o.retry,
    )
    flow = counted(flow, seen)
    host = base.split("://", 1)[1]
    r0, c0 = registry_cpu(pid), time.process_time()
    t0 = time.perf_counter()
    out = session.run(flow, host)
    dt = time.perf_counter() - t0
    c1, r1 = time.process_time(), registry_cpu(pid)
    if out is not PushOutcome.UPLOADED:
        raise SystemExit(f"{repo}: {out}")
    return dt, r1 - r0, c1 - c0, sum(m in ("PATCH", "PUT") for m in seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, action="append", help="blob size (repeatable)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--schedule", action="append", choices=list(SCHEDULES), help="(repeatable)")
    ap.add_argument("--out")
    a = ap.parse_args()
    sizes = a.mib or [40, 50, 79, 367]
    bench_data = Path(os.environ.get("BENCH_DATA", Path.home() / ".cache" / "pallet-bench"))
    work = bench_data / "work-pallet"
    work.mkdir(parents=True, exist_ok=True)
    names = ["put", *[s for s in (a.schedule or SCHEDULES) if s != "put"]]
    times: dict[int, dict[str, list[float]]] = {m: {s: [] for s in names} for m in sizes}
    requests: dict[tuple[int, str], int] = {}
    cpu: dict[int, dict[str, list[tuple[float, float]]]] = {
        m: {s: [] for s in names} for m in sizes
    }
    with tempfile.TemporaryDirectory(dir=work, prefix="registry-chunks-") as tmp:
        reg = Registry(Path(tmp))
        try:
            base = f"http://{reg.host}"
            with Session(Options(insecure=[reg.host])) as session:
                session.endpoint(reg.host)
                pool = bytearray(os.urandom(max(sizes) * MiB))
                n = 0
                for r in range(a.rounds + 1):
                    k = r % len(names)
                    for mib in sizes:
                        for name in names[k:] + names[:k]:
                            n += 1
                            pool[:8] = n.to_bytes(8, "big")  # a new digest every time
                            o = Options(**SCHEDULES[name])  # type: ignore[arg-type]
                            blob = memoryview(pool)[: mib * MiB]
                            dt, reg_cpu, own_cpu, requests[mib, name] = one(
                                session, base, f"chunks/{name}-{n}", blob, o, reg.proc.pid
                            )
                            if r:
                                times[mib][name].append(dt)
                                cpu[mib][name].append((reg_cpu, own_cpu))
        finally:
            reg.stop()
    lines = [
        "| blob MiB | schedule | data requests | ms, median (min-max) | ÷ put | paired ÷ put"
        " | registry CPU ms | client CPU ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    result: dict[str, Any] = {"rounds": a.rounds, "sizes": {}}
    for mib in sizes:
        ref = statistics.median(times[mib]["put"])
        for name in names:
            v = times[mib][name]
            med = statistics.median(v)
            reqs = requests[mib, name]
            paired = statistics.median(x / y for x, y in zip(v, times[mib]["put"], strict=True))
            reg_ms = statistics.median(c[0] for c in cpu[mib][name]) * 1e3
            own_ms = statistics.median(c[1] for c in cpu[mib][name]) * 1e3
            lines.append(
                f"| {mib} | {name} | {reqs} | {med * 1e3:.0f} ({min(v) * 1e3:.0f}-"
                f"{max(v) * 1e3:.0f}) | {med / ref:.3f} | {paired:.3f} | {reg_ms:.0f}"
                f" | {own_ms:.0f} |"
            )
            result["sizes"].setdefault(str(mib), {})[name] = {
                "times": v,
                "cpu": cpu[mib][name],
                "requests": reqs,
            }
    print("\n".join(lines))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
