"""Commands registered on the parser by :func:`register`."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any, common: Any, add: Any) -> None:
    """Add this module's commands to the parser."""
