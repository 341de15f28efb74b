"""Conformance suites: one set of tests for every implementation of a store interface.

As containerd's ``core/content/testsuite`` is run against its local store, its metadata store and
a remote daemon, each suite here is a class of tests written against an abstract fixture (the
store under test). A test module subclasses a suite once per implementation and provides that
fixture; the class name says which implementation runs (``class TestContainerd(ContentSuite)``).

Where an implementation behaves otherwise on purpose, its subclass overrides that one test with
``pytest.mark.xfail(strict=True, raises=...)`` and a reason, and pins what it does instead in a
test of its own: a difference that goes away makes the strict xfail fail, so the list of
differences can only shrink knowingly. The suite classes are not collected by themselves (their
names do not start with ``Test``).

- :mod:`.content`: :class:`~.content.ContentSuite` (a content store: ingest, commit, read,
  labels, walk, statuses).
- :mod:`.metadata`: :class:`~.metadata.ImageSuite` (an image store) and
  :class:`~.metadata.LeaseSuite` (a lease manager and the writes under a lease).
- :mod:`.snapshots`: :class:`~.snapshots.SnapshotSuite` (a snapshotter).
"""

__all__: list[str] = []
