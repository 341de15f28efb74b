"""Files replaced whole or not at all (containerd's ``pkg/atomicfile``).

:func:`create` makes a temporary file beside the target, so that the final rename stays on one
file system. Leaving the ``with`` block normally flushes it to disk, gives it its mode and
renames it over the target; leaving it with an exception removes it, and the target is as it
was. Readers therefore see the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

__all__ = ["create"]


def create(
    path: str | os.PathLike[str], mode: int, *, prefix: str, suffix: str = ""
) -> AbstractContextManager[BinaryIO]:
    """The temporary file for ``path``, created now; use it in a ``with`` block at once.

    Raises:
        OSError: the temporary file cannot be created (the directory is missing or read-only).
    """
    import tempfile  # on first use: the commands that write no file do not load it

    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=os.path.dirname(target))
    return _fill(fd, tmp, target, mode)


@contextlib.contextmanager
def _fill(fd: int, tmp: str, target: str, mode: int) -> Iterator[BinaryIO]:
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
