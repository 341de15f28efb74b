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

The collector reads every table of the database and the content store's files; it removes
snapshots through a callback, because a snapshot's directory belongs to its snapshotter. The whole
collection holds ``<root>/gc.lock`` exclusively; blob publication holds it shared.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import gc as _gc
from ..content.local import LocalStore
from ..errors import NotFound
from ..labels import GC_EXPIRE, GC_FLAT, GC_REF_CONTENT, GC_REF_SNAPSHOT_PREFIX, GC_ROOT
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from ._sqlite import Database
from .leases import drop_resource

__all__ = ["GCStats", "collect", "refs_from_labels"]

Node = tuple[str, str]


@dataclass(slots=True)
class GCStats:
    """What one collection removed (or, with ``dry_run``, would remove: ``blobs`` only)."""

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
        if k == GC_REF_CONTENT or k.startswith((GC_REF_CONTENT + ".", GC_REF_CONTENT + "/")):
            out.append(("content", v))
        elif k.startswith(GC_REF_SNAPSHOT_PREFIX):
            sn = k[len(GC_REF_SNAPSHOT_PREFIX) :].split("/", 1)[0]
            if sn:
                out.append(("snapshot", f"{sn}/{v}"))
    return out


def _expired(labels: Mapping[str, str], now: datetime) -> bool:
    exp = labels.get(GC_EXPIRE)
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
    db: Database,
    content: LocalStore,
    remove_snapshot: Callable[[str, str], None],
    *,
    now: datetime | None = None,
    ingest_grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
) -> GCStats:
    """Collect garbage in the store of ``db`` and ``content``. Safe against writers in other
    processes.

    ``remove_snapshot(snapshotter, key)`` removes one snapshot, directory and record (NotFound if
    it is gone already); it is called children first.
    """
    now = now or datetime.now(UTC)
    stats = GCStats()
    with db.gc_lock(shared=False):
        roots: list[Node] = []
        flat: list[Node] = []
        leased_ingests: set[str] = set()
        snaps: dict[str, tuple[str, dict[str, str]]] = {}
        # The leases and the graph are read in one transaction: read apart, a lease created
        # between the two reads (with its snapshot) would count as dead and lose its snapshot.
        # Records written after it are not in the sweep's lists, so they are safe.
        with db.transaction() as c:
            # ---- expired leases
            live: dict[str, bool] = {}
            for lid, lbl in c.execute("SELECT id, labels FROM leases").fetchall():
                lab = json.loads(lbl)
                if _expired(lab, now):
                    stats.leases.append(lid)
                else:
                    live[lid] = bool(lab.get(GC_FLAT))
            if stats.leases and not dry_run:
                c.executemany("DELETE FROM leases WHERE id=?", [(x,) for x in stats.leases])
            # ---- graph
            blob_labels: dict[str, dict[str, str]] = {
                d: json.loads(lbl) for d, lbl in c.execute("SELECT digest, labels FROM blobs")
            }
            for sn, key, parent, lbl in c.execute(
                "SELECT snapshotter, key, parent, labels FROM snapshots"
            ):
                snaps[f"{sn}/{key}"] = (f"{sn}/{parent}" if parent else "", json.loads(lbl))
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
        roots.extend(("content", d) for d, lab in blob_labels.items() if GC_ROOT in lab)
        roots.extend(("snapshot", k) for k, (_, lab) in snaps.items() if GC_ROOT in lab)
        ingest_expected: dict[str, str] = {}
        ingest_dirs: dict[str, Path] = {}
        for d in content.ingest_dirs():
            s = content.dir_status(d)
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
            stats.blobs = [d for d in content.digests() if ("content", d) not in reachable]
            return stats
        # ---- sweep snapshots (children first), then blobs, then ingests
        dead = [k for k in snaps if ("snapshot", k) not in reachable]
        depth = {k: _depth(k, snaps) for k in dead}
        for k in sorted(dead, key=lambda k: -depth[k]):
            sn, key = k.split("/", 1)
            with contextlib.suppress(NotFound):
                remove_snapshot(sn, key)
            stats.snapshots.append(k)

        def remove_blob(n: Node) -> None:
            dg = Digest(n[1])
            path = content.blob_path(dg)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            stats.blobs.append(dg)
            stats.bytes += size

        on_disk = [("content", d) for d in content.digests()]
        _gc.sweep(reachable, on_disk, remove_blob)
        present = {n[1] for n in on_disk} - set(stats.blobs)
        stale = [d for d in blob_labels if d not in present]
        if stale:
            with db.transaction() as tx:
                tx.executemany("DELETE FROM blobs WHERE digest=?", [(d,) for d in stale])
                for dg in stale:
                    drop_resource(tx, "content", dg)
            stats.records = len(stale)
        for ref, d in ingest_dirs.items():
            if ("ingest", ref) in reachable:
                continue
            if content.abort_dir(d):
                stats.ingests.append(ref)
                content.index.forget_ingest(ref)
    return stats


def _depth(k: str, snaps: Mapping[str, tuple[str, Mapping[str, str]]]) -> int:
    n, seen = 0, set()
    p = snaps.get(k, ("", {}))[0]
    while p and p not in seen:
        seen.add(p)
        n += 1
        p = snaps.get(p, ("", {}))[0]
    return n
