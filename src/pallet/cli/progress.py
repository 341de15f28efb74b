"""Progress renderers for ``--progress``: ``plain`` (BuildKit's lines), ``tty`` (live bars with
bytes and rates, via rich), ``rawjson`` (one JSON object per update) and ``quiet``. ``auto`` picks
``tty`` when standard error is a terminal, else ``plain``. :func:`progress_session` opens one for
the length of a job and closes it with the job's error, if any; :func:`progress_steps` does the
same for each step of a call that runs several (``Progress.vertex``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any, TextIO

from .. import InvalidArgument, Progress

__all__ = ["MODES", "Renderer", "Steps", "make", "progress_session", "progress_steps"]

MODES = ("auto", "plain", "tty", "rawjson", "quiet")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1000
    return f"{n}"


class Renderer:
    """Base: a writer with ``close()``."""

    def write(self, p: Progress, /) -> None:
        raise NotImplementedError

    def close(self, error: str = "") -> None:
        pass


class Plain(Renderer):
    """``#1 exporting layers 0.3s done`` lines under one vertex, as BuildKit's plain output."""

    def __init__(self, out: TextIO, vertex: str) -> None:
        self.out = out
        self.vertex = vertex
        self.lock = threading.Lock()
        self.t0: float | None = None

    def _line(self, s: str) -> None:
        self.out.write(f"#1 {s}\n")
        self.out.flush()

    def write(self, p: Progress, /) -> None:
        with self.lock:
            if self.t0 is None:
                self.t0 = time.time()
                self._line(self.vertex)
            if p.parent:
                if p.done and not p.error:
                    sz = f" {_size(p.current)} / {_size(p.total)}" if p.total else ""
                    took = (p.completed or 0) - (p.started or p.completed or 0)
                    self._line(f"{p.name}{sz} {took:.1f}s done")
                return
            if p.error:
                self._line(f"{p.id} ERROR: {p.error}")
            elif p.done:
                took = (p.completed or 0) - (p.started or p.completed or 0)
                self._line(f"{p.id} {took:.1f}s done")
            else:
                self._line(p.id)

    def close(self, error: str = "") -> None:
        with self.lock:
            if self.t0 is None:
                return
            took = time.time() - self.t0
            self._line(f"ERROR: {error}" if error else f"DONE {took:.1f}s")


class RawJSON(Renderer):
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def write(self, p: Progress, /) -> None:
        d: dict[str, Any] = {k: v for k, v in asdict(p).items() if v not in ("", None, 0)}
        with self.lock:
            self.out.write(json.dumps(d, sort_keys=True) + "\n")
            self.out.flush()


class Quiet(Renderer):
    def write(self, p: Progress, /) -> None:
        pass


class TTY(Renderer):
    """Live view: one line per status, a bar with bytes and rate for each blob in flight."""

    def __init__(self, out: TextIO, vertex: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self.console = Console(file=out)
        self.bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.vertex = vertex
        self.bars.start()

    def write(self, p: Progress, /) -> None:
        with self.lock:
            key = f"{p.parent}/{p.id}"
            label = p.name if p.parent else p.id
            if p.error:
                label = f"{label} [red]ERROR: {p.error}[/red]"
            elif p.done and not p.parent:
                label = f"[green]✔[/green] {label}"
            t = self.tasks.get(key)
            if t is None:
                t = self.bars.add_task(label, total=p.total or None)
                self.tasks[key] = t
            if p.parent:
                self.bars.update(t, description=label, completed=p.current, total=p.total or None)
            else:
                self.bars.update(t, description=label, completed=1 if p.done else 0, total=1)

    def close(self, error: str = "") -> None:
        self.bars.stop()


def make(mode: str, *, vertex: str = "exporting to image", out: TextIO | None = None) -> Renderer:
    stream = out or sys.stderr
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    if mode == "plain":
        return Plain(stream, vertex)
    if mode == "tty":
        return TTY(stream, vertex)
    if mode == "rawjson":
        return RawJSON(stream)
    if mode == "quiet":
        return Quiet()
    raise InvalidArgument(f"progress mode {mode!r}: want one of {', '.join(MODES)}")


@contextmanager
def progress_session(mode: str, vertex: str) -> Iterator[Renderer]:
    """A renderer for ``--progress mode`` under ``vertex``, closed when the block ends: with the
    block's error (its text, else its type's name) if it raised."""
    r = make(mode, vertex=vertex)
    error = ""
    try:
        yield r
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        r.close(error)


class Steps:
    """A writer for a call that runs several steps (an export: ``resolving <base>``, then
    ``exporting to image``): one renderer per step, as :func:`progress_session` would open it,
    opened when the step starts and closed when it ends, with its error if it failed.

    A step reports itself as the event whose ``id`` is its ``vertex``; the other events go to
    the renderer of the step that is open, without their ``vertex`` (so ``rawjson`` prints what
    it prints for a single job).
    """

    def __init__(self, mode: str) -> None:
        if mode not in MODES:  # now, not at the first event
            raise InvalidArgument(f"progress mode {mode!r}: want one of {', '.join(MODES)}")
        self.mode = mode
        self.lock = threading.Lock()
        self.open: Renderer | None = None

    def write(self, p: Progress, /) -> None:
        with self.lock:
            if p.vertex and p.id == p.vertex and not p.parent:
                if not p.done:
                    self._close()
                    self.open = make(self.mode, vertex=p.vertex)
                elif self.open is not None:
                    self._close(p.error)
                return
            if self.open is None:
                self.open = make(self.mode, vertex=p.vertex or "exporting to image")
            self.open.write(replace(p, vertex=""))

    def _close(self, error: str = "") -> None:
        r, self.open = self.open, None
        if r is not None:
            r.close(error)

    def close(self, error: str = "") -> None:
        with self.lock:
            self._close(error)


@contextmanager
def progress_steps(mode: str) -> Iterator[Steps]:
    """A :class:`Steps` writer for ``--progress mode``; a step still open when the block ends
    is closed, with the block's error if it raised."""
    steps = Steps(mode)
    error = ""
    try:
        yield steps
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        steps.close(error)
