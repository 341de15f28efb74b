"""The metadata database (images, leases, blob labels, snapshot records), GC and fsck."""

__all__: list[str] = []
