"""The embedded store's metadata: blob labels, images, leases and snapshot records in one SQLite
database, garbage collection and fsck. :mod:`pallet.metadata.store` composes them."""

__all__: list[str] = []
