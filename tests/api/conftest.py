"""Fixtures of the library API tests. The tests themselves use only the names in
``pallet.__all__``; the daemons and registries come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pallet


@pytest.fixture
def pstore(tmp_path: Path) -> Iterator[pallet.Store]:
    """An embedded store on a fresh root (``tmp_path / "store"``)."""
    with pallet.Store(root=tmp_path / "store") as store:
        yield store
