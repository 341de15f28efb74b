"""snapshots package."""

__all__: list[str] = []
