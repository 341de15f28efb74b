"""Mark-and-sweep over an abstract graph. Knows nothing about storage (containerd ``pkg/gc``)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

__all__ = ["sweep", "tricolor"]

N = TypeVar("N", bound=Hashable)


def tricolor(roots: Iterable[N], refs: Callable[[N], Iterable[N]]) -> set[N]:
    """Return every node reachable from ``roots`` following ``refs`` (iterative, cycle-safe)."""
    black: set[N] = set()
    grey = list(roots)
    while grey:
        node = grey.pop()
        if node in black:
            continue
        black.add(node)
        grey.extend(r for r in refs(node) if r not in black)
    return black


def sweep(reachable: set[N], all_nodes: Iterable[N], remove: Callable[[N], None]) -> list[N]:
    """Call ``remove`` for every node not in ``reachable``; return the removed nodes."""
    gone = [n for n in all_nodes if n not in reachable]
    for n in gone:
        remove(n)
    return gone
