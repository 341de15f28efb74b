"""Progress events: what the exporter and the registry client report, and who listens.

A :class:`Progress` is one status of one job, keyed by ``id`` (BuildKit's status ID, e.g.
``exporting layers`` or ``pushing layers``). Producers call ``writer.write(Progress(...))`` from any
thread; renderers (``cli.progress``) turn the stream into plain lines, live bars or JSON.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = ["NullProgress", "Progress", "ProgressWriter", "Recorder", "finished", "status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One status of one job: started, then updated, then completed (or failed).

    Example::

        def show(p: pallet.Progress) -> None:
            if p.done and not p.parent:
                print(p.vertex, p.id, "error: " + p.error if p.error else "done")

        store.export([pallet.Layer("dist")], progress=show)
    """

    id: str
    name: str = ""
    current: int = 0
    total: int = 0
    started: float | None = None
    completed: float | None = None
    error: str = ""
    parent: str = ""  # the status a per-blob progress belongs to (e.g. "pushing layers")
    #: the step the status belongs to (BuildKit's vertex, e.g. ``exporting to image``), set by
    #: calls that run several; the event whose ``id`` is its ``vertex`` reports the step itself
    vertex: str = ""

    @property
    def done(self) -> bool:
        return self.completed is not None


def finished(
    id: str, name: str, size: int, *, parent: str, started: float, completed: float | None = None
) -> Progress:
    """A completed item of ``size`` bytes (all of it done) under ``parent``."""
    return Progress(
        id=id,
        name=name,
        current=size,
        total=size,
        started=started,
        completed=time.time() if completed is None else completed,
        parent=parent,
    )


class ProgressWriter(Protocol):
    def write(self, p: Progress, /) -> None:
        """Record an update; must be thread-safe."""
        ...


class NullProgress:
    def write(self, p: Progress, /) -> None:
        pass


class Recorder:
    """Keeps every update (tests, ``--metadata-file``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Progress] = []

    def write(self, p: Progress, /) -> None:
        with self._lock:
            self.events.append(p)

    def ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.events:
            if not e.parent:
                seen.setdefault(e.id, None)
        return list(seen)


@contextmanager
def status(
    writer: ProgressWriter, id: str, *, name: str = "", total: int = 0
) -> Iterator[Progress]:
    """Report ``id`` as started, then completed (with the error text if the body raises)."""
    start = Progress(id=id, name=name or id, total=total, started=time.time())
    writer.write(start)
    try:
        yield start
    except BaseException as exc:
        writer.write(replace(start, completed=time.time(), error=str(exc) or type(exc).__name__))
        raise
    writer.write(replace(start, current=total, completed=time.time()))
