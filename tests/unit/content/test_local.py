"""Behaviour of the embedded content store alone (the shared suite, support/conformance/content.py,
also runs against containerd)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import pallet.content.local as local
from pallet.content.local import LocalStore
from pallet.oci.digest import Digest


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def test_large_blob_starts_writeback_in_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob larger than the writeback step asks the kernel to write each step as it goes
    (so the commit's fsync only waits for the tail); the bytes are unchanged by it."""
    store = LocalStore(tmp_path / "content")
    calls: list[tuple[int, int]] = []
    real = local._start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(local, "_start_writeback", spy)
    step = local._WRITEBACK_STEP
    data = os.urandom(2 * step + 12345)
    with store.writer("ref-big", total=len(data)) as w:
        for i in range(0, len(data), 1 << 20):
            w.write(data[i : i + (1 << 20)])
        d = w.commit(len(data), sha(data))
    assert calls == [(0, step), (step, step)]
    assert d == sha(data)
    with store.open(d) as f:
        assert hashlib.sha256(f.read()).hexdigest() == d.hex
    # the kernel call itself is available here (Linux): a later blob keeps using it
    assert local._writeback_state == 1
