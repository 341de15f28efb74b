"""The public value types of pallet's library API: what goes into an export and what comes out
of the :class:`pallet.Store` calls.

Standard library and :mod:`pallet.oci` only: ``import pallet`` loads this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .oci.descriptor import Descriptor

__all__ = ["ArchiveImage", "Config", "ExportResult", "Image", "Layer", "RootFS", "UnpackResult"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveImage:
    """One image of an archive: its root (as ``index.json`` lists it) and the names it goes by.
    :meth:`pallet.Store.save` returns those it wrote, :meth:`pallet.Store.load` those it read.

    Example::

        for image in store.load("app.tar"):
            print(image.digest, *image.names)
    """

    #: the root descriptor: a manifest, or an index (with ``save``'s ``platform``, the chosen
    #: platform's manifest)
    target: Descriptor
    #: normalised references (``docker.io/library/alpine:3.20``); after ``load``, the store
    #: names the image by each of them
    names: tuple[str, ...] = ()
    #: the archive's format: ``"oci"`` (an OCI image layout) or ``"docker"`` (``docker save``'s)
    format: str = "oci"

    @property
    def digest(self) -> str:
        """The root's digest, ``sha256:…``."""
        return str(self.target.digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpackResult:
    """What :meth:`pallet.Store.unpack` wrote: the manifest whose layers it applied.

    Example::

        result = store.unpack("registry.example.com/app:1", "rootfs")
        print(result.digest, len(result.layers))
    """

    #: the manifest unpacked (for an index, the platform's manifest)
    manifest: Descriptor
    #: its layers, bottom first
    layers: tuple[Descriptor, ...] = ()
    #: the uncompressed digest of each layer, as the config's ``rootfs.diff_ids`` lists them
    diff_ids: tuple[str, ...] = ()
    #: what could not be reproduced exactly (ownership without privileges, device nodes…)
    warnings: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The manifest's digest, ``sha256:…``."""
        return str(self.manifest.digest)
