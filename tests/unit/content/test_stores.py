"""The content-store suite (tests/support/conformance/content.py) on the embedded stores: the
bare on-disk store (in-memory label index) and the store wired to the SQLite metadata database,
which is what pallet uses. tests/unit/test_containerd_conformance.py runs it against containerd.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.content.local import LocalStore
from pallet.metadata.store import Store
from pallet.oci.digest import Digest
from support.conformance.content import ContentSuite, sha, write


class EmbeddedContentSuite(ContentSuite):
    """The suite plus what the embedded stores add: ``blob_path`` names the blob's file."""

    @pytest.fixture
    def content_root(self, store: LocalStore) -> Path:
        return store.root

    def test_blob_path_is_the_local_layout(self, store: LocalStore) -> None:
        d = write(store, "p", b"where am I")
        assert store.blob_path(d) == store.root / "blobs" / "sha256" / d.hex
        data = b"sha512 content"
        d512 = Digest.parse("sha512:" + hashlib.sha512(data).hexdigest())
        with store.writer("s512", expected=d512) as w:
            w.write(data)
            w.commit(len(data))
        assert store.blob_path(d512).parent.name == "sha512"
        assert store.blob_path(d512).read_bytes() == data
        assert (
            store.blob_path(sha(b"absent")) == store.root / "blobs" / "sha256" / sha(b"absent").hex
        )


class TestLocal(EmbeddedContentSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "content")


class TestMetadata(EmbeddedContentSuite):
    @pytest.fixture
    def store(self, db: Store) -> Iterator[LocalStore]:
        yield db.content
