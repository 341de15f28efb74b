"""Pure OCI data model: digests, descriptors, media types. No filesystem, no network."""

from __future__ import annotations

from .descriptor import Descriptor, Platform
from .digest import Digest, Digester

__all__ = ["Descriptor", "Digest", "Digester", "Platform"]
