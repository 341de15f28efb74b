"""The public value types of pallet's library API: what goes into an export and what comes out
of the :class:`pallet.Store` calls.

Standard library only: ``import pallet`` loads this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Config", "ExportResult", "Image", "Layer", "RootFS"]


@dataclass(frozen=True, slots=True)
class Layer:
    """A directory exported as one layer, its whole tree placed at ``dest``.

    Example::

        pallet.Layer("dist", dest="/app")
    """

    path: str
    dest: str = "/"


@dataclass(frozen=True, slots=True)
class RootFS:
    """A complete root filesystem, diffed against what is below it (the base, or the previous
    :class:`RootFS`): files it no longer has become whiteouts.

    Example::

        pallet.RootFS("rootfs")
    """

    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The image config's ``config`` fields an export sets on top of the base's (or of
    ``raw``): each given field replaces the base's, ``env`` and ``labels`` merge by key.

    Example::

        pallet.Config(cmd=["python", "-m", "app"], env={"PYTHONUNBUFFERED": "1"})
    """

    cmd: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    #: ``"8080"`` or ``"53/udp"``
    exposed_ports: Sequence[str] = ()
    #: a whole image config (as a config file holds it), used instead of the base's
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """What :meth:`pallet.Store.export` made.

    Example::

        result.digest     # 'sha256:…' of the manifest or index
        result.metadata   # the keys buildx writes to --metadata-file
    """

    #: the root digest (manifest, or index for several platforms)
    digest: str
    #: buildx's metadata-file dict (``containerimage.digest``, ``containerimage.descriptor``…)
    metadata: Mapping[str, Any]
    #: the names the image was stored or pushed under
    names: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """An image in the store.

    Example::

        for image in store.images():
            print(image.name, image.digest, image.size)
    """

    name: str
    #: the root's digest (a manifest or an index)
    digest: str
    media_type: str
    #: bytes of everything the image references (for an index, every platform), as
    #: ``docker images`` shows; content not in the store counts by its descriptor's size
    size: int
    #: bytes of the root manifest or index itself
    root_size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None
