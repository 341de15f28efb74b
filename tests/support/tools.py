"""External tools the tests run: skopeo, umoci, containerd, GNU tar, zstd and the like.

A missing tool fails the test that needs it; it never skips it. scripts/setup.sh installs every
tool the suite uses, on a developer's machine as in CI, so a skip could only hide a broken setup.
"""

from __future__ import annotations

import shutil

import pytest

__all__ = ["require_tool"]


def require_tool(*names: str) -> str:
    """The path of the first of ``names`` found on ``$PATH``; fails the test if none is."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    wanted = " or ".join(repr(n) for n in names)
    pytest.fail(f"required tool {wanted} is not installed (scripts/setup.sh installs it)")
