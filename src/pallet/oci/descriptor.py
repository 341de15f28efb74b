"""Descriptors and platforms (OCI image-spec ``descriptor.md``), with their JSON form."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from .digest import Digest

__all__ = ["Descriptor", "Platform"]

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """``os/architecture[/variant]`` plus the optional OS version and features.

    Example::

        p = pallet.Platform.parse("linux/arm/v7")
        (p.os, p.architecture, p.variant)  # ('linux', 'arm', 'v7')
    """

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """Parse ``linux/amd64``, ``linux/arm/v7``, ``linux/arm64/v8``; normalise as containerd."""
        parts = spec.strip().lower().split("/")
        if not 1 <= len(parts) <= 3 or any(not p for p in parts):
            raise InvalidArgument(f"platform {spec!r}: want os/arch[/variant]")
        if len(parts) == 1:
            raise InvalidArgument(f"platform {spec!r}: want os/arch[/variant]")
        os_, arch = parts[0], _ARCH_ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else ""
        if arch == "arm64" and variant == "v8":
            variant = ""
        if arch == "arm" and variant == "":
            variant = "v7"
        return cls(os=os_, architecture=arch, variant=variant)

    @classmethod
    def default(cls) -> Platform:
        """This machine's platform (``uname -m``; ``platform.machine()`` on Linux is the same)."""
        m = os.uname().machine.lower()
        return cls.parse(f"linux/{_ARCH_ALIASES.get(m, m)}")

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Platform:
        return cls(
            os=str(obj.get("os", "")),
            architecture=str(obj.get("architecture", "")),
            variant=str(obj.get("variant", "")),
            os_version=str(obj.get("os.version", "")),
            os_features=tuple(obj.get("os.features", ()) or ()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """A typed pointer to content: media type, digest and size (+ optional fields).

    Example::

        for image in pallet.Store().load("app.tar"):
            print(image.target.media_type, image.target.digest, image.target.size)
    """

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Descriptor:
        """Decode and validate a descriptor object.

        Raises:
            InvalidArgument: a required field is missing or malformed.
        """
        if not isinstance(obj, Mapping):
            raise InvalidArgument(f"descriptor {obj!r}: not an object")
        mt = obj.get("mediaType")
        size = obj.get("size")
        if not isinstance(mt, str) or not mt:
            raise InvalidArgument(f"descriptor {obj.get('digest')!r}: missing mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"descriptor {obj.get('digest')!r}: invalid size {size!r}")
        plat = obj.get("platform")
        ann = obj.get("annotations") or {}
        if not isinstance(ann, Mapping):
            raise InvalidArgument(f"descriptor {obj.get('digest')!r}: annotations not an object")
        return cls(
            media_type=mt,
            digest=Digest.parse(str(obj.get("digest", ""))),
            size=size,
            annotations={str(k): str(v) for k, v in ann.items()},
            platform=Platform.from_json(plat) if isinstance(plat, Mapping) else None,
            urls=tuple(obj.get("urls") or ()),
            artifact_type=obj.get("artifactType"),
        )
