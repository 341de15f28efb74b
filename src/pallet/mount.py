"""Mounts, as containerd describes them (``core/mount``), for snapshotters that need none.

pallet's snapshotters are directory based: every mount is a ``bind`` of a directory, which a
consumer reads or writes in place (:meth:`Mount.as_dir`) without any mount syscall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import Unsupported

__all__ = ["Mount", "as_dir"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def as_dir(self) -> str:
        """The directory this mount exposes.

        Raises:
            Unsupported: the mount is not a plain bind mount.
        """
        if self.type not in ("bind", "rbind"):
            raise Unsupported(f"mount {self.type}:{self.source}: only bind mounts are supported")
        return self.source


def as_dir(mounts: Sequence[Mount]) -> str:
    """The directory of a single bind mount."""
    if len(mounts) != 1:
        raise Unsupported(f"mounts {list(mounts)!r}: want exactly one bind mount")
    return mounts[0].as_dir()
