"""Options of the registry client (one frozen value; validated by :meth:`Options.validated`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace

from ..errors import InvalidArgument
from .auth import Credentials
from .protocol import RetryPolicy
from .wire import Wire

__all__ = ["DEFAULT_CHUNK", "DEFAULT_CHUNK_MAX", "DEFAULT_JOBS", "DEFAULT_MONOLITHIC", "Options"]

DEFAULT_JOBS = 4
#: the first chunk of a resumable upload, and every chunk after a failed one: what a dropped
#: connection costs at most early in a blob (a buffering proxy forwards nothing of the request)
DEFAULT_CHUNK = 16 << 20
#: chunks double after each accepted one up to this: fewer requests for large blobs, and a drop
#: costs at most about what was already accepted (measured in BENCHMARKS.md)
DEFAULT_CHUNK_MAX = 128 << 20
#: one ``PUT`` per blob up to this size (one request, as containerd sends every blob); larger
#: blobs go in resumable chunks, so that a dropped connection costs at most one chunk
DEFAULT_MONOLITHIC = DEFAULT_CHUNK


def _no_credentials() -> Mapping[str, Credentials]:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How to talk to registries.

    Attributes:
        jobs: blobs transferred in parallel (BuildKit and ggcr default to 4).
        insecure: registry hosts (``host[:port]``) that may use plain HTTP or unverified TLS;
            every other host gets verified TLS, except loopback hosts, which use plain HTTP as
            containerd does (falling back to HTTPS when the server speaks TLS).
        ca_file: a PEM bundle of extra trusted CAs (added to the system's).
        chunk_size: bytes of the first chunk of a chunked upload (raised to the registry's
            ``OCI-Chunk-Min-Length``), and of every chunk after a chunk of the push failed.
        chunk_max: each accepted chunk doubles the next, up to this (never below
            ``chunk_size``); a dropped connection costs the chunk it hit.
        monolithic_max: blobs up to this size go in one ``PUT`` (restarted whole if the
            connection drops); larger ones in resumable chunks.
        retry: backoff for connection errors, 408, 429 (``Retry-After``) and 5xx.
        credentials: explicit credentials by registry host, ahead of config files.
        wire: send every request through this :class:`~pallet.remote.wire.Wire` instead of
            the network (tests: ``FakeWire``); the caller closes it.
        sleep: how to wait between retries (tests inject a recorder).
    """

    jobs: int = DEFAULT_JOBS
    insecure: Collection[str] = frozenset()
    ca_file: str | None = None
    chunk_size: int = DEFAULT_CHUNK
    chunk_max: int = DEFAULT_CHUNK_MAX
    monolithic_max: int = DEFAULT_MONOLITHIC
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 30.0
    read_timeout: float = 300.0
    credentials: Mapping[str, Credentials] = field(default_factory=_no_credentials)
    user_agent: str = "pallet/0.1"
    wire: Wire | None = None
    sleep: Callable[[float], None] = time.sleep

    def validated(self) -> Options:
        """Check ranges; returns self.

        Raises:
            InvalidArgument: a value out of range, naming it.
        """
        if self.jobs < 1:
            raise InvalidArgument(f"jobs {self.jobs}: must be at least 1")
        if self.chunk_size < 1 << 16:
            raise InvalidArgument(f"chunk size {self.chunk_size}: must be at least 64 KiB")
        if self.monolithic_max < 0:
            raise InvalidArgument(f"monolithic maximum {self.monolithic_max}: must be >= 0")
        if self.retry.attempts < 1:
            raise InvalidArgument(f"retry attempts {self.retry.attempts}: must be at least 1")
        return self

    def with_insecure(self, *hosts: str) -> Options:
        return replace(self, insecure=frozenset(self.insecure) | set(hosts))
