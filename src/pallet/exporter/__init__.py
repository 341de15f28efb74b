"""BuildKit's container-image exporter: interfaces, the export source and the response keys.

Lifecycle (BuildKit's ``exporter.Exporter``): an :class:`Exporter` is built once with its stores;
``resolve(attrs)`` parses and validates the options (no I/O; errors are
:class:`~pallet.errors.InvalidArgument` with BuildKit's texts) and returns an
:class:`ExporterInstance`; ``export(source)`` writes the image and returns the response map
(:data:`RESPONSE_DIGEST`, ...). The pure halves live in the submodules:

* :mod:`.options`: attrs -> ``ImageExportOptions`` (names, push, compression, epoch, ...);
* :mod:`.annotations`: ``annotation…`` keys;
* :mod:`.config`: the image config and history rules;
* :mod:`.manifest`: manifest/index bytes, descriptors and GC labels;
* :mod:`.plan`: ``Commit`` without the I/O: source + options -> per-platform targets, then
  layers -> every blob to write, root descriptor first known.

The I/O halves: :mod:`.layers` builds each snapshot's layer blob, :mod:`.unpack` holds the
unpacker protocols and pallet's own unpacker, :mod:`.image` is the exporter that drives them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .. import _gojson
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest

if TYPE_CHECKING:
    from ..progress import ProgressWriter

__all__ = [
    "META_BASE_CONFIG",
    "META_EPOCH",
    "META_IMAGE_CONFIG",
    "META_IMAGE_NAME",
    "META_INLINE_CACHE",
    "META_PLATFORMS",
    "RESPONSE_CONFIG_DIGEST",
    "RESPONSE_DESCRIPTOR",
    "RESPONSE_DIGEST",
    "RESPONSE_IMAGE_NAME",
    "Exporter",
    "ExporterInstance",
    "Source",
    "export_response",
]

#: root digest (manifest or index); always present
RESPONSE_DIGEST = "containerimage.digest"
#: config digest; single-manifest exports only
RESPONSE_CONFIG_DIGEST = "containerimage.config.digest"
#: base64 of the root descriptor's compact JSON
RESPONSE_DESCRIPTOR = "containerimage.descriptor"
#: the full comma-separated name string; only when there is a name
RESPONSE_IMAGE_NAME = "image.name"

#: image config JSON; ``/<platform id>`` for one platform, falling back to the plain key
META_IMAGE_CONFIG = "containerimage.config"
#: base image config (its history is not clamped by the epoch); ``/<platform id>`` too
META_BASE_CONFIG = "containerimage.base.config"
#: inline cache bytes; ``/<platform id>`` too
META_INLINE_CACHE = "containerimage.inlinecache"
#: ``{"Platforms":[{"ID":"linux/amd64","Platform":{...}}]}``
META_PLATFORMS = "refs.platforms"
#: SOURCE_DATE_EPOCH from the frontend; ``/<platform id>`` too
META_EPOCH = "source.date.epoch"
#: the name ``name=*`` stands for
META_IMAGE_NAME = "image.name"


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """What to export: snapshot keys and the frontend's metadata.

    ``ref`` is the snapshot of a single-platform result (``None``: an image with no layers);
    ``refs`` maps platform ids (``linux/arm64``) to snapshot keys for a multi-platform result,
    which also needs ``refs.platforms`` in ``metadata``.
    """

    ref: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, bytes] = field(default_factory=dict)


class ExporterInstance(Protocol):
    """One resolved export; ``export`` may be called once per build result."""

    @property
    def name(self) -> str:
        """The progress vertex name, ``exporting to image``."""
        ...

    def export(self, source: Source, *, progress: ProgressWriter | None = None) -> dict[str, str]:
        """Write (and name, unpack, push) the image; returns the response map.

        ``progress`` receives this export's status events (default: the exporter's own).
        """
        ...


class Exporter(Protocol):
    """An exporter bound to its stores."""

    def resolve(self, attrs: Mapping[str, str]) -> ExporterInstance:
        """Parse and validate ``attrs`` (no I/O).

        Raises:
            InvalidArgument: an invalid option, with BuildKit's text.
        """
        ...


def export_response(
    root: Descriptor, *, image_name: str = "", config_digest: Digest | None = None
) -> dict[str, str]:
    """The exporter's response map for a committed root descriptor (spec §1, §5.2)."""
    out = {
        RESPONSE_DIGEST: str(root.digest),
        RESPONSE_DESCRIPTOR: base64.b64encode(_gojson.marshal(root.to_json())).decode("ascii"),
    }
    if config_digest is not None:
        out[RESPONSE_CONFIG_DIGEST] = str(config_digest)
    if image_name:
        out[RESPONSE_IMAGE_NAME] = image_name
    return out
