"""Content digests (``algorithm:hex``), as the OCI image spec defines them.

sha256 is what pallet writes; sha512 is accepted wherever a descriptor carries it.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..errors import InvalidArgument

__all__ = ["ALGORITHMS", "Digest", "Digester", "canonical", "from_bytes"]

# hex lengths of the registered algorithms (image-spec descriptor.md "Registered algorithms")
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class _Hash(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> _Hash: ...


class Digest(str):
    """A validated digest string, usable as a dict key.

    Construct with :meth:`parse` (validates) or from a trusted ``algorithm:hex`` string.

    Example::

        d = pallet.Digest.parse("sha256:" + "ab" * 32)
        (d.algorithm, d.hex[:4])  # ('sha256', 'abab')
    """

    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Validate ``value`` and return it as a Digest.

        Raises:
            InvalidArgument: the grammar, algorithm or hex length is wrong.
        """
        if not isinstance(value, str) or not _GRAMMAR.match(value):
            raise InvalidArgument(f"digest {value!r}: invalid digest format")
        alg, _, hx = value.partition(":")
        size = ALGORITHMS.get(alg)
        if size is None:
            raise InvalidArgument(f"digest {value!r}: unsupported digest algorithm {alg!r}")
        if len(hx) != size or not re.fullmatch(r"[a-f0-9]+", hx):
            raise InvalidArgument(
                f"digest {value!r}: invalid {alg} hex (need {size} lowercase hex)"
            )
        return cls(value)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    def hasher(self) -> Digester:
        return Digester(self.algorithm)


def canonical(data: bytes) -> Digest:
    """sha256 digest of ``data``."""
    import hashlib  # on first use: loading OpenSSL's hashes slows start-up (BENCHMARKS.md)

    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


from_bytes = canonical


class Digester:
    """Incremental hasher that yields a :class:`Digest`."""

    __slots__ = ("_h", "algorithm")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidArgument(f"digest algorithm {algorithm!r}: unsupported")
        self.algorithm = algorithm
        import hashlib

        self._h: _Hash = hashlib.new(algorithm)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> Digest:
        return Digest(f"{self.algorithm}:{self._h.hexdigest()}")

    def copy(self) -> Digester:
        d = Digester.__new__(Digester)
        d.algorithm = self.algorithm
        d._h = self._h.copy()
        return d
