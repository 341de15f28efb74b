"""Platform normalisation and formatting as containerd's ``platforms`` package does it.

:class:`~pallet.oci.descriptor.Platform` is the value type; this module adds what the exporter
needs on top: ``Normalize`` (``x86_64`` -> ``amd64``, ``arm`` -> ``arm/v7``, ``arm64/v8`` ->
``arm64``...), ``FormatAll`` (the key of ``refs.platforms`` and of platform-scoped annotations),
``Parse`` of a specifier and Go's ``%v`` of a platform (for the spec's error text).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .._gojson import go_quote as _q
from ..errors import InvalidArgument
from ..oci.descriptor import Platform

__all__ = ["KNOWN_ARCHES", "KNOWN_OSES", "format_all", "go_repr", "normalize", "parse_specifier"]

KNOWN_OSES = frozenset(
    (
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    )
)
KNOWN_ARCHES = frozenset(
    (
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "ppc64",
        "ppc64le",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    )
)
_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+\Z")


def _normalize_os(os_: str) -> str:
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """containerd ``platforms.Normalize``: canonical os, architecture and variant."""
    arch, variant = _normalize_arch(p.architecture, p.variant)
    return replace(p, os=_normalize_os(p.os), architecture=arch, variant=variant)


def format_all(p: Platform) -> str:
    """containerd ``platforms.FormatAll``: ``os[(os.version)]/arch[/variant]``."""
    os_ = f"{p.os}({p.os_version})" if p.os_version else p.os
    return "/".join(x for x in (os_, p.architecture, p.variant) if x)


def go_repr(p: Platform) -> str:
    """Go's ``%v`` of an ``ocispec.Platform`` value: ``{arch os os.version [features] variant}``."""
    return f"{{{p.architecture} {p.os} {p.os_version} [{' '.join(p.os_features)}] {p.variant}}}"


def parse_specifier(spec: str, *, default: Platform) -> Platform:
    """containerd ``platforms.Parse`` followed by ``Normalize``.

    ``default`` fills the missing half of a one-component specifier (``linux`` or ``arm64``),
    the way containerd uses the host's platform.

    Raises:
        InvalidArgument: containerd's texts for malformed or unknown specifiers.
    """
    parts = spec.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise InvalidArgument(
                f"{_q(spec)}: {_q(part)} is an invalid component of {_q(spec)}: platform "
                f'specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument'
            )
    if len(parts) == 1:
        os_ = _normalize_os(parts[0])
        if os_ in KNOWN_OSES:
            return normalize(replace(default, os=os_, os_version="", os_features=()))
        arch, variant = _normalize_arch(parts[0], "")
        if arch in KNOWN_ARCHES:
            return normalize(Platform(os=default.os, architecture=arch, variant=variant))
        raise InvalidArgument(
            f"{_q(spec)}: unknown operating system or architecture: invalid argument"
        )
    if len(parts) > 3:
        raise InvalidArgument(f"{_q(spec)}: cannot parse platform specifier: invalid argument")
    variant = parts[2] if len(parts) == 3 else ""
    return normalize(Platform(os=parts[0], architecture=parts[1], variant=variant))
