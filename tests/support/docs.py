"""The documentation's test helpers: the scratch trees its examples export, and the fixture
registry as they name it (tests/docs/)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.registry import Registry

__all__ = ["DOC_REGISTRY", "REPO", "DocRegistry", "cli", "make_trees"]

REPO = Path(__file__).resolve().parents[2]

#: how the documentation names the registry its examples push to and pull from; the tests put
#: the fixture registry's ``127.0.0.1:PORT`` in its place
DOC_REGISTRY = "registry.example.com"


def cli(*args: str, root: Path, cwd: Path | None = None) -> str:
    """``pallet --root ROOT ARGS…`` in a child process; its standard output."""
    res = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    if res.returncode != 0:
        pytest.fail(f"pallet {' '.join(args)} exited {res.returncode}:\n{res.stderr}")
    return res.stdout


def make_trees(d: Path) -> None:
    """The directories the documentation's examples export, in ``d``:

    * ``dist/``: an application (``run``, executable, and ``VERSION``);
    * ``config/``: its configuration (``app.conf``);
    * ``rootfs/`` and ``rootfs-v2/``: two versions of a small root filesystem; the second drops
      ``etc/motd`` and changes ``app/VERSION``;
    * ``amd64/`` and ``arm64/``: one root filesystem per platform (``etc/arch`` says which).
    """
    files = {
        "dist/run": "#!/bin/sh\necho hello from pallet\n",
        "dist/VERSION": "1.0\n",
        "config/app.conf": "mode = prod\n",
        "rootfs/etc/os-release": 'NAME="demo"\n',
        "rootfs/etc/motd": "welcome\n",
        "rootfs/app/VERSION": "1\n",
        "rootfs-v2/etc/os-release": 'NAME="demo"\n',
        "rootfs-v2/app/VERSION": "2\n",
        "amd64/etc/arch": "amd64\n",
        "arm64/etc/arch": "arm64\n",
    }
    for name, text in files.items():
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.chmod(d / "dist" / "run", 0o755)


@dataclass(frozen=True)
class DocRegistry:
    """The fixture registry as the documentation's examples see it: it already holds
    ``registry.example.com/base:1``, a two-platform (``linux/amd64``, ``linux/arm64``) base
    image with ``/etc/os-release``, ``PATH`` set and ``/bin/sh`` as its command."""

    registry: Registry

    @property
    def host(self) -> str:
        return self.registry.host

    def substitute(self, text: str) -> str:
        """``text`` with the documentation's registry replaced by this one."""
        return text.replace(DOC_REGISTRY, self.host)
