"""OCI annotations given as exporter options or frontend metadata (BuildKit ``annotation…`` keys).

Keys match ``^annotation(?:-<type>)?(?:\\[<platform>\\])?\\.<key>$`` (spec §5.1):

==========================  =============================================================
``annotation.k`` /          ``annotations`` of each manifest (the default type)
``annotation-manifest.k``
``annotation-manifest-      annotations of each manifest's descriptor inside the index
descriptor.k``
``annotation-index.k``      ``annotations`` of the index
``annotation-index-         annotations of the root (index) descriptor, as ``index.json``
descriptor.k``              shows it
==========================  =============================================================

``[os/arch[/variant]]`` limits an annotation to one platform; it is meant for the two manifest
types (BuildKit keeps platform-scoped index annotations but never uses them). A key that looks
almost right (``annotationx``, ``annotation-Index.k``) is not an annotation and stays metadata.

Errors are checked in two places, as BuildKit does: the key syntax when options are resolved
(``unrecognized annotation type <t>``, a bad platform), the rest against the source at export
time (:meth:`AnnotationGroup.validate`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import InvalidArgument
from ..oci.descriptor import Platform
from ._platforms import format_all, normalize, parse_specifier

__all__ = [
    "ANNOTATIONS_NEED_OCI",
    "INDEX_ANNOTATIONS_SINGLE",
    "AnnotationGroup",
    "AnnotationKey",
    "AnnotationType",
    "Annotations",
    "parse_annotation_key",
]

ANNOTATIONS_NEED_OCI = 'cannot export annotations with "oci-mediatypes=false"'
INDEX_ANNOTATIONS_SINGLE = "index annotations not supported for single platform export"

# Go RE2: \S is ASCII non-space and $ is the end of text
_KEY = re.compile(r"annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.([^\t\n\f\r ]+)\Z")


class AnnotationType(enum.StrEnum):
    MANIFEST = "manifest"
    MANIFEST_DESCRIPTOR = "manifest-descriptor"
    INDEX = "index"
    INDEX_DESCRIPTOR = "index-descriptor"


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationKey:
    """A parsed ``annotation…`` option key."""

    type: AnnotationType
    key: str
    platform: Platform | None = None

    @property
    def platform_key(self) -> str:
        """``""`` for every platform, else the normalised ``FormatAll`` of the platform."""
        return "" if self.platform is None else format_all(self.platform)


def parse_annotation_key(
    name: str, *, default_platform: Platform | None = None
) -> AnnotationKey | None:
    """Parse an option key; ``None`` when it is not an annotation key at all.

    ``default_platform`` completes a one-component platform (``[arm64]``), as containerd uses
    the host platform; it defaults to ``linux/amd64``.

    Raises:
        InvalidArgument: ``unrecognized annotation type <t>``, or containerd's error for a
            platform specifier it cannot parse.
    """
    m = _KEY.match(name)
    if m is None:
        return None
    typ, plat, key = m.group(1) or "", m.group(2) or "", m.group(3)
    try:
        atype = AnnotationType(typ or "manifest")
    except ValueError:
        raise InvalidArgument(f"unrecognized annotation type {typ}") from None
    platform = None
    if plat:
        dflt = default_platform or Platform(os="linux", architecture="amd64")
        platform = parse_specifier(plat, default=dflt)
    return AnnotationKey(type=atype, key=key, platform=platform)


@dataclass(frozen=True, slots=True, kw_only=True)
class Annotations:
    """The four annotation maps that apply to one manifest (or, unscoped, to the index)."""

    index: Mapping[str, str] = field(default_factory=dict)
    index_descriptor: Mapping[str, str] = field(default_factory=dict)
    manifest: Mapping[str, str] = field(default_factory=dict)
    manifest_descriptor: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.index or self.index_descriptor or self.manifest or self.manifest_descriptor
        )

    def get(self, t: AnnotationType) -> Mapping[str, str]:
        return {
            AnnotationType.INDEX: self.index,
            AnnotationType.INDEX_DESCRIPTOR: self.index_descriptor,
            AnnotationType.MANIFEST: self.manifest,
            AnnotationType.MANIFEST_DESCRIPTOR: self.manifest_descriptor,
        }[t]

    def needs_oci(self) -> bool:
        """Index, index-descriptor and manifest-descriptor annotations exist only in OCI types."""
        return bool(self.index or self.index_descriptor or self.manifest_descriptor)


def _merged(*layers: Annotations) -> Annotations:
    maps: dict[AnnotationType, dict[str, str]] = {t: {} for t in AnnotationType}
    for a in layers:
        for t in AnnotationType:
            maps[t].update(a.get(t))
    return Annotations(
        index=maps[AnnotationType.INDEX],
        index_descriptor=maps[AnnotationType.INDEX_DESCRIPTOR],
        manifest=maps[AnnotationType.MANIFEST],
        manifest_descriptor=maps[AnnotationType.MANIFEST_DESCRIPTOR],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationGroup:
    """Annotations by platform key (``""``: every platform), BuildKit's ``AnnotationsGroup``."""

    by_platform: Mapping[str, Annotations] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.by_platform.values())

    @classmethod
    def parse(
        cls, items: Iterable[tuple[str, str]], *, default_platform: Platform | None = None
    ) -> tuple[AnnotationGroup, list[str]]:
        """Split ``(key, value)`` pairs into annotations and the keys that are not annotations.

        Raises:
            InvalidArgument: see :func:`parse_annotation_key`.
        """
        maps: dict[str, dict[AnnotationType, dict[str, str]]] = {}
        rest: list[str] = []
        for name, value in items:
            k = parse_annotation_key(name, default_platform=default_platform)
            if k is None:
                rest.append(name)
                continue
            per = maps.setdefault(k.platform_key, {t: {} for t in AnnotationType})
            per[k.type][k.key] = value
        group = {
            pk: Annotations(
                index=m[AnnotationType.INDEX],
                index_descriptor=m[AnnotationType.INDEX_DESCRIPTOR],
                manifest=m[AnnotationType.MANIFEST],
                manifest_descriptor=m[AnnotationType.MANIFEST_DESCRIPTOR],
            )
            for pk, m in maps.items()
        }
        return cls(by_platform=group), rest

    def merge(self, other: AnnotationGroup) -> AnnotationGroup:
        """Both groups together; ``other`` wins on the same platform, type and key."""
        keys = list(self.by_platform) + [k for k in other.by_platform if k not in self.by_platform]
        out = {
            pk: _merged(
                self.by_platform.get(pk, Annotations()), other.by_platform.get(pk, Annotations())
            )
            for pk in keys
        }
        return AnnotationGroup(by_platform=out)

    def for_platform(self, platform: Platform | None) -> Annotations:
        """Unscoped annotations overlaid with those scoped to ``platform`` (which win).

        ``None`` gives the unscoped ones: what the index and its descriptor get.
        """
        layers = [self.by_platform.get("", Annotations())]
        if platform is not None:
            layers.append(self.by_platform.get(format_all(normalize(platform)), Annotations()))
        return _merged(*layers)

    def platform_keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.by_platform if k)

    def needs_oci(self) -> bool:
        return any(a.needs_oci() for a in self.by_platform.values())

    def validate(self, *, refs: Iterable[str], oci: bool) -> None:
        """The export-time checks of BuildKit's ``Commit``, in its order.

        ``refs`` are the keys of ``Source.refs`` (empty for a single-ref export): a scoped
        platform must be one of them, unless there are none or exactly one (BuildKit's
        ``FindRef`` then matches any key).

        Raises:
            InvalidArgument: ``invalid annotation: no platform <p> found in source``, or
                ``cannot export annotations with "oci-mediatypes=false"``.
        """
        ids = set(refs)
        for pk, a in self.by_platform.items():
            if pk and len(ids) > 1 and pk not in ids:
                raise InvalidArgument(f"invalid annotation: no platform {pk} found in source")
            if a.needs_oci() and not oci:
                raise InvalidArgument(ANNOTATIONS_NEED_OCI)
