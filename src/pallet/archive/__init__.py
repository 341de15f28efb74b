"""Layer tars: the deterministic writer, the differ and the safe applier."""

__all__: list[str] = []
