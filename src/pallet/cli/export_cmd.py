"""The image-producing commands (``export`` and its relatives), registered on the parser."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any, common: Any, add: Any) -> None:
    """Add the image-producing commands to the parser."""
