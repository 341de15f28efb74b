"""Store consistency check: re-hash every blob, check every image's graph, find stray records.

Each problem is one :class:`Problem` (one line when printed). With ``repair=True`` only what cannot
be trusted is removed: blobs whose bytes do not hash to their name, records of blobs that are
gone, and ingest directories whose status cannot be read. A valid blob is never removed.

Like the collector, the check reads the ``blobs`` table and the content store's files directly,
under ``<root>/gc.lock`` held exclusively.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..content.local import LocalStore
from ..errors import Error
from ..images import ImageStore, children, traverse
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from ._sqlite import Database

__all__ = ["Problem", "fsck"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, printed as ``<kind> <subject>: <detail>[ (repaired)]``."""

    kind: str
    subject: str
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        tail = " (repaired)" if self.repaired else ""
        return f"{self.kind} {self.subject}: {self.detail}{tail}"


def _rehash(path: os.PathLike[str] | str, dgst: Digest) -> str:
    h = dgst.hasher()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest().hex


def fsck(
    db: Database,
    content: LocalStore,
    images: ImageStore,
    *,
    repair: bool = False,
    on_blob: Callable[[Digest], None] | None = None,
) -> list[Problem]:
    """Check the store of ``db``, ``content`` and ``images``; returns the problems found (empty
    when the store is sound). ``on_blob`` is called for each blob that hashes correctly."""
    problems: list[Problem] = []
    bad: set[str] = set()
    with db.gc_lock(shared=False):
        on_disk = set()
        for dgst in content.digests():
            on_disk.add(dgst)
            path = content.blob_path(dgst)
            try:
                actual = _rehash(path, dgst)
            except OSError as exc:
                problems.append(Problem("blob", dgst, f"unreadable: {exc.strerror}"))
                continue
            if actual != dgst.hex:
                bad.add(dgst)
                fixed = False
                if repair:
                    path.unlink(missing_ok=True)
                    content.index.forget_blob(dgst)
                    fixed = True
                problems.append(
                    Problem("blob", dgst, f"content hashes to {dgst.algorithm}:{actual}", fixed)
                )
            elif on_blob is not None:
                on_blob(dgst)
        with db.read() as c:
            records = c.execute("SELECT digest FROM blobs").fetchall()
        for (dg,) in records:
            if dg not in on_disk:
                if repair:
                    content.index.forget_blob(Digest(dg))
                problems.append(Problem("record", dg, "blob record without blob file", repair))
        for d in content.ingest_dirs():
            if content.dir_status(d) is None:
                fixed = repair and content.abort_dir(d)
                problems.append(Problem("ingest", d.name, "unreadable ingest status", fixed))
    for img in images.list():
        problems.extend(_check_graph(content, img.name, img.target, bad))
    return problems


def _check_graph(content: LocalStore, name: str, root: Descriptor, bad: set[str]) -> list[Problem]:
    out: list[Problem] = []

    def check(d: Descriptor) -> list[Descriptor]:
        """The children of a present, whole blob; a problem and none otherwise."""
        path = content.blob_path(d.digest)
        if d.digest in bad or not path.exists():
            out.append(Problem("image", name, f"missing {d.media_type} {d.digest}"))
            return []
        size = path.stat().st_size
        if size != d.size:
            out.append(
                Problem("image", name, f"{d.digest} has size {size}, descriptor says {d.size}")
            )
            return []
        try:
            return children(content, d)
        except Error as exc:
            out.append(Problem("image", name, str(exc)))
            return []

    for _ in traverse(root, check):
        pass  # check records the problems
    return out
