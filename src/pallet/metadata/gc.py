"""Garbage collection for a store: roots and edges from the metadata, then mark and sweep.

Nodes are ``("content", digest)``, ``("snapshot", "<snapshotter>/<key>")`` and
``("ingest", ref)``.

Roots: every lease that has not expired (its resources; a lease labelled
``containerd.io/gc.flat`` keeps its resources but their references are not followed), every image
(its target and the references in its labels), blobs and snapshots labelled
``containerd.io/gc.root``, and ingests younger than ``ingest_grace`` (their expected digest too).
Edges: ``containerd.io/gc.ref.content[.<x>|/<x>]`` labels name blobs,
``containerd.io/gc.ref.snapshot.<snapshotter>[/<x>]`` labels name snapshots, a snapshot's parent,
an ingest's expected digest. Expired leases are deleted. Sweeping removes every unreachable blob
file and record, stale ingest and snapshot (children before parents).

The whole collection holds ``<root>/gc.lock`` exclusively; blob publication holds it shared.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .. import gc as _gc
from .. import labels as L
from ..errors import NotFound
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest

if TYPE_CHECKING:
    from .db import DB

__all__ = ["GCStats", "collect", "refs_from_labels"]

Node = tuple[str, str]


@dataclass(slots=True)
class GCStats:
    blobs: list[str] = field(default_factory=list)
    bytes: int = 0
    leases: list[str] = field(default_factory=list)
    ingests: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    records: int = 0


def refs_from_labels(labels: Mapping[str, str]) -> list[Node]:
    """The nodes that ``gc.ref.*`` labels point at."""
    out: list[Node] = []
    for k, v in labels.items():
        if k == L.GC_REF_CONTENT or k.startswith((L.GC_REF_CONTENT + ".", L.GC_REF_CONTENT + "/")):
            out.append(("content", v))
        elif k.startswith(L.GC_REF_SNAPSHOT_PREFIX):
            sn = k[len(L.GC_REF_SNAPSHOT_PREFIX) :].split("/", 1)[0]
            if sn:
                out.append(("snapshot", f"{sn}/{v}"))
    return out


def _expired(labels: Mapping[str, str], now: datetime) -> bool:
    exp = labels.get(L.GC_EXPIRE)
    if not exp:
        return False
    try:
        t = datetime.fromisoformat(exp.replace("Z", "+00:00"))
    except ValueError:
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t <= now


def collect(
    db: DB,
    *,
    now: datetime | None = None,
    ingest_grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
) -> GCStats:
    """Collect garbage in ``db``'s store. Safe against writers in other processes."""
    now = now or datetime.now(UTC)
    stats = GCStats()
    store = db.content
    with db.exclusive():
        c = db._conn()
        # ---- expired leases
        leases = list(c.execute("SELECT id, labels FROM leases"))
        live: dict[str, bool] = {}
        for lid, lbl in leases:
            lab = json.loads(lbl)
            if _expired(lab, now):
                stats.leases.append(lid)
            else:
                live[lid] = bool(lab.get(L.GC_FLAT))
        if stats.leases and not dry_run:
            with db._tx() as tx:
                tx.executemany("DELETE FROM leases WHERE id=?", [(x,) for x in stats.leases])
        # ---- graph
        blob_labels: dict[str, dict[str, str]] = {
            d: json.loads(lbl) for d, lbl in c.execute("SELECT digest, labels FROM blobs")
        }
        snaps: dict[str, tuple[str, dict[str, str]]] = {}
        for sn, key, parent, lbl in c.execute(
            "SELECT snapshotter, key, parent, labels FROM snapshots"
        ):
            snaps[f"{sn}/{key}"] = (f"{sn}/{parent}" if parent else "", json.loads(lbl))
        roots: list[Node] = []
        flat: list[Node] = []
        leased_ingests: set[str] = set()
        for lid, rtype, rid in c.execute("SELECT lease, type, id FROM lease_resources"):
            if lid not in live:
                continue
            if rtype == "content":
                node: Node = ("content", rid)
            elif rtype == "ingests":
                node = ("ingest", rid)
                leased_ingests.add(rid)
            elif rtype.startswith("snapshots/"):
                node = ("snapshot", f"{rtype[len('snapshots/') :]}/{rid}")
            else:
                continue
            (flat if live[lid] else roots).append(node)
        for target, lbl in c.execute("SELECT target, labels FROM images"):
            roots.append(("content", Descriptor.from_json(json.loads(target)).digest))
            roots.extend(refs_from_labels(json.loads(lbl)))
        roots.extend(("content", d) for d, lab in blob_labels.items() if L.GC_ROOT in lab)
        roots.extend(("snapshot", k) for k, (_, lab) in snaps.items() if L.GC_ROOT in lab)
        ingest_expected: dict[str, str] = {}
        ingest_dirs: dict[str, Path] = {}
        for d in store.ingest_dirs():
            s = store._status_of(d)
            if s is None:
                ingest_dirs[f"?{d.name}"] = d
                continue
            ingest_dirs[s.ref] = d
            if s.expected:
                ingest_expected[s.ref] = s.expected
            if s.ref in leased_ingests or now - s.updated_at < ingest_grace:
                roots.append(("ingest", s.ref))

        def refs(n: Node) -> Iterable[Node]:
            kind, ident = n
            if kind == "content":
                return refs_from_labels(blob_labels.get(ident, {}))
            if kind == "snapshot":
                parent, lab = snaps.get(ident, ("", {}))
                out = refs_from_labels(lab)
                if parent:
                    out.append(("snapshot", parent))
                return out
            if kind == "ingest" and ident in ingest_expected:
                return [("content", ingest_expected[ident])]
            return ()

        reachable = _gc.tricolor(roots, refs)
        for n in flat:
            reachable.add(n)
            if n[0] == "snapshot":  # flat-leased snapshots still keep their parent chain
                p = snaps.get(n[1], ("", {}))[0]
                while p and ("snapshot", p) not in reachable:
                    reachable.add(("snapshot", p))
                    p = snaps.get(p, ("", {}))[0]
        if dry_run:
            stats.blobs = [d for d in store.digests() if ("content", d) not in reachable]
            return stats
        # ---- sweep snapshots (children first), then blobs, then ingests
        dead = [k for k in snaps if ("snapshot", k) not in reachable]
        depth = {k: _depth(k, snaps) for k in dead}
        for k in sorted(dead, key=lambda k: -depth[k]):
            sn, key = k.split("/", 1)
            snapshotter = db.snapshotter(sn)
            with contextlib.suppress(NotFound):
                snapshotter.gc_remove(key)
            stats.snapshots.append(k)

        def remove_blob(n: Node) -> None:
            dg = Digest(n[1])
            path = store.blob_path(dg)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            stats.blobs.append(dg)
            stats.bytes += size

        on_disk = [("content", d) for d in store.digests()]
        _gc.sweep(reachable, on_disk, remove_blob)
        present = {n[1] for n in on_disk} - set(stats.blobs)
        stale = [d for d in blob_labels if d not in present]
        if stale:
            with db._tx() as tx:
                tx.executemany("DELETE FROM blobs WHERE digest=?", [(d,) for d in stale])
                tx.executemany(
                    "DELETE FROM lease_resources WHERE type='content' AND id=?",
                    [(d,) for d in stale],
                )
            stats.records = len(stale)
        for ref, d in ingest_dirs.items():
            if ("ingest", ref) in reachable:
                continue
            if store.abort_dir(d):
                stats.ingests.append(ref)
                db.forget_ingest(ref)
    return stats


def _depth(k: str, snaps: Mapping[str, tuple[str, Mapping[str, str]]]) -> int:
    n, seen = 0, set()
    p = snaps.get(k, ("", {}))[0]
    while p and p not in seen:
        seen.add(p)
        n += 1
        p = snaps.get(p, ("", {}))[0]
    return n
