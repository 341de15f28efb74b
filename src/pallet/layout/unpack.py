"""Unpacking an image's root filesystem into a plain directory (``umoci raw unpack``).

The layers are applied in order with :func:`pallet.archive.apply.apply_tar`, the same
root-confined applier the snapshotters use (its docstring has the safety argument): every file
system call is relative to a descriptor inside the destination, links are resolved as if the
destination were ``/``, so a hostile layer (``../`` names, absolute or escaping symlinks, hard
links to host files) cannot create, change or remove anything outside it. Each layer is
decompressed by sniffing its bytes and must hash to the config's diff ID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..archive.apply import apply_blob
from ..content import Provider
from ..errors import InvalidArgument
from ..images import read_json
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from ._select import select_manifest

__all__ = ["UnpackResult", "image_layers", "unpack"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpackResult:
    """The manifest that was unpacked, its layers and their diff IDs, and the warnings."""

    manifest: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[Digest, ...]
    warnings: tuple[str, ...] = ()


def image_layers(
    provider: Provider, target: Descriptor, platform: Platform | None = None
) -> tuple[Descriptor, list[Descriptor], list[Digest]]:
    """(manifest, layer descriptors, diff IDs) of ``target`` for ``platform`` (default: host).

    Raises:
        NotFound: no manifest for the platform, or a blob is missing.
        InvalidArgument: a malformed manifest or config, or diff IDs that do not match the layers.
    """
    manifest = select_manifest(provider, target, platform or Platform.default())
    m = read_json(provider, manifest)
    cfg = m.get("config")
    layers_raw = m.get("layers") or []
    if not isinstance(cfg, dict) or not isinstance(layers_raw, list):
        raise InvalidArgument(f"manifest {manifest.digest}: no config or layers")
    layers = [Descriptor.from_json(x) for x in layers_raw]
    conf = read_json(provider, Descriptor.from_json(cfg), "config")
    rootfs = conf.get("rootfs")
    diff_raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_raw, list) or len(diff_raw) != len(layers):
        raise InvalidArgument(
            f"config {cfg.get('digest')}: rootfs.diff_ids does not match the "
            f"{len(layers)} layers of manifest {manifest.digest}"
        )
    diff_ids = [Digest.parse(str(d)) for d in diff_raw]
    for ly in layers:
        if not mt.is_layer(ly.media_type):
            raise InvalidArgument(f"manifest {manifest.digest}: {ly.media_type} is not a layer")
    return manifest, layers, diff_ids


def unpack(
    provider: Provider,
    target: Descriptor,
    dest: str | os.PathLike[str],
    *,
    platform: Platform | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> UnpackResult:
    """Write the root filesystem of ``target`` (a manifest, or an index and a platform) to
    ``dest``, which must not exist or be an empty directory.

    If anything fails, a ``dest`` created here is removed again (without following links); an
    existing empty one is left as the failure found it.

    Raises:
        InvalidArgument: ``dest`` is not empty, a malformed image, a layer that cannot be applied
            (``layer entry <name>: ...``).
        DigestMismatch: a layer does not hash to its diff ID.
        NotFound: no manifest for the platform, a blob is missing.
        FailedPrecondition: the file system refused an operation.
    """
    manifest, layers, diff_ids = image_layers(provider, target, platform)
    root = Path(dest)
    created = False
    if root.is_symlink():
        raise InvalidArgument(f"unpack destination {root}: a symbolic link")
    try:
        if any(root.iterdir()):
            raise InvalidArgument(f"unpack destination {root}: not empty")
    except FileNotFoundError:
        root.mkdir(mode=0o755, parents=True)
        created = True
    except NotADirectoryError:
        raise InvalidArgument(f"unpack destination {root}: not a directory") from None
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if on_warning is not None:
            on_warning(msg)

    try:
        for ly, did in zip(layers, diff_ids, strict=True):
            apply_blob(provider, ly, root, expected_diff_id=did, on_warning=warn)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
        raise
    return UnpackResult(
        manifest=manifest,
        layers=tuple(layers),
        diff_ids=tuple(diff_ids),
        warnings=tuple(warnings),
    )
