"""``pallet export``: root filesystems and directories in, an image out (buildx-style flags).

A shell over :meth:`pallet.Store.export`: ``--layer DIR[:DEST]`` and ``--rootfs [PLATFORM=]DIR``
become :class:`pallet.Layer` and :class:`pallet.RootFS` inputs (``--rootfs PLATFORM=DIR`` the
inputs of one platform), the config flags a :class:`pallet.Config`, each ``-o`` the attrs of one
output (read by :func:`pallet.parse_output`, as buildx reads it). The store is the embedded one
at ``--root``, or containerd with ``--containerd``. What comes back is printed (the digest) and
written to ``--metadata-file``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from .. import Config, InvalidArgument, Layer, Platform, RootFS, parse_output
from ._common import add_containerd_arguments, command_parser, pallet_store
from .progress import MODES, progress_steps

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["build_parser"]


class _Ordered(argparse.Action):
    """Append (kind, value) to one shared list so that --layer and --rootfs keep their order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(ns, self.dest, None) or [])
        items.append((self.metavar_kind, values))
        setattr(ns, self.dest, items)

    metavar_kind = ""


class _LayerAction(_Ordered):
    metavar_kind = "layer"


class _RootfsAction(_Ordered):
    metavar_kind = "rootfs"


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of ``pallet export``."""
    sp = command_parser(prog, cmd_export)
    sp.add_argument(
        "--layer",
        action=_LayerAction,
        dest="inputs",
        metavar="DIR[:DEST]",
        help="the whole tree of DIR, placed at DEST (default /), as one layer",
    )
    sp.add_argument(
        "--rootfs",
        action=_RootfsAction,
        dest="inputs",
        metavar="[PLATFORM=]DIR",
        help="a complete filesystem, diffed against the previous one or the base",
    )
    sp.add_argument(
        "--base",
        metavar="REF",
        help="start from this image: from the store, else pulled from its registry",
    )
    sp.add_argument(
        "--platform",
        action="append",
        default=[],
        help="target platform(s), e.g. linux/amd64 (several make an index)",
    )
    sp.add_argument("--config", metavar="FILE", help="image config JSON")
    sp.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--entrypoint", help='JSON array or a command line ("" clears it)')
    sp.add_argument("--cmd", help='JSON array or a command line ("" clears it)')
    sp.add_argument("--workdir")
    sp.add_argument("--user")
    sp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    sp.add_argument(
        "-o",
        "--output",
        action="append",
        default=[],
        help="type=image,name=…,push=true,… (buildx syntax)",
    )
    sp.add_argument(
        "-t", "--tag", action="append", default=[], help="shorthand for a name of the image output"
    )
    sp.add_argument("--metadata-file", metavar="FILE", help="write the response as JSON")
    sp.add_argument("--progress", default="auto", choices=MODES)
    sp.add_argument(
        "--insecure-registry",
        action="store_true",
        help="allow plain HTTP and unverified TLS when pulling --base from a registry",
    )
    sp.add_argument("--ca-file", metavar="PEM", help="CA bundle for registries")
    add_containerd_arguments(sp, snapshotter=True)
    sp.set_defaults(inputs=[])
    return sp


def _split_cmd(value: str) -> list[str]:
    import shlex

    v = value.strip()
    if v.startswith("["):
        try:
            arr = json.loads(v)
        except ValueError as exc:
            raise InvalidArgument(f"command {value!r}: invalid JSON array: {exc}") from exc
        if not isinstance(arr, list) or not all(isinstance(x, str) for x in arr):
            raise InvalidArgument(f"command {value!r}: want a JSON array of strings")
        return arr
    return shlex.split(v)


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` flags in order; a key given again moves to the end (as ``--env`` always
    did: the last ``Env`` entry of a key wins and sits last)."""
    out: dict[str, str] = {}
    for x in items:
        k, sep, v = x.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what} {x!r}: want KEY=VALUE")
        out.pop(k, None)
        out[k] = v
    return out


def _config(args: argparse.Namespace) -> Config:
    raw: dict[str, Any] | None = None
    if args.config:
        try:
            with open(args.config, "rb") as f:
                raw = json.load(f)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"config {args.config}: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidArgument(f"config {args.config}: not a JSON object")
    return Config(
        env=_pairs(args.env, "env"),
        entrypoint=_split_cmd(args.entrypoint) if args.entrypoint is not None else None,
        cmd=_split_cmd(args.cmd) if args.cmd is not None else None,
        workdir=args.workdir or None,
        user=args.user or None,
        labels=_pairs(args.label, "label"),
        exposed_ports=tuple(args.expose),
        raw=raw or None,  # an empty file's {} leaves the base's config, as it always did
    )


def _inputs(
    args: argparse.Namespace,
) -> tuple[list[Layer | RootFS], Mapping[str, list[Layer | RootFS]] | list[str] | None]:
    """The inputs of every platform, and the platforms: ``--platform`` (several, or the
    platforms of ``--rootfs PLATFORM=DIR``, make an index; one makes an index of one, as
    BuildKit's multi-platform builds). With ``--rootfs PLATFORM=DIR``, each platform's inputs
    are given in the order of the command line: its own and those of every platform."""
    plats: list[str] = []
    for p in args.platform:
        for part in p.split(","):
            if part.strip():
                s = str(Platform.parse(part))
                if s not in plats:
                    plats.append(s)
    items: list[tuple[str, Layer | RootFS]] = []  # (platform or "", input) in order
    seen_layer = ""
    for kind, value in args.inputs:
        if kind == "rootfs" and seen_layer:
            raise InvalidArgument(
                f"rootfs {value}: comes after layer {seen_layer}; give every --rootfs before "
                "the --layer inputs (a root filesystem is diffed against the one below it)"
            )
        plat = ""
        if kind == "rootfs" and "=" in value and not os.path.exists(value):
            plat, _, value = value.partition("=")
            plat = str(Platform.parse(plat))
        item: Layer | RootFS
        if kind == "layer":
            seen_layer = value
            d, sep, dest = value.rpartition(":") if ":" in value else (value, "", "")
            if not sep or not d:
                d, dest = value, ""
            item = Layer(d, dest=dest or "/")
        else:
            item = RootFS(value)
        if not os.path.isdir(item.path):
            raise InvalidArgument(f"directory {item.path}: not a directory")
        items.append((plat, item))
        if plat and plat not in plats:
            plats.append(plat)
    if any(plat for plat, _ in items):
        return [], {p: [x for plat, x in items if plat in ("", p)] for p in plats}
    return [x for _, x in items], plats or None


def _outputs(args: argparse.Namespace) -> list[dict[str, str]]:
    """Each ``-o`` (default ``type=image``); ``-t`` adds names to the first."""
    outputs = [parse_output(o) for o in args.output] or [{"type": "image"}]
    if args.tag:
        outputs[0]["name"] = ",".join(filter(None, [outputs[0].get("name", ""), *args.tag]))
    return outputs


def _writes_stdout(outputs: Sequence[Mapping[str, str]]) -> bool:
    """A tarball goes to standard output (then the digest is not printed there)."""
    return any(
        o["type"] != "image"
        and o.get("dest", "-") in ("", "-")
        and o.get("tar", "true") not in ("false", "0", "f", "F", "FALSE", "False")
        for o in outputs
    )


def _write_metadata_file(path: str, metadata: Mapping[str, Any]) -> None:
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InvalidArgument(f"metadata file {path}: {exc.strerror or exc}") from None


def _warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    outputs = _outputs(args)
    for o in outputs:
        if o["type"] not in ("image", "oci", "docker"):
            raise InvalidArgument(f"output type {o['type']!r}: want image, oci or docker")
    inputs, platform = _inputs(args)
    config = _config(args)
    if args.metadata_file and not os.path.isdir(
        os.path.dirname(os.path.abspath(args.metadata_file))
    ):
        raise InvalidArgument(f"metadata file {args.metadata_file}: directory does not exist")
    with pallet_store(args) as store, progress_steps(args.progress) as steps:
        result = store.export(
            inputs,
            platform=platform,
            base=args.base,
            config=config,
            outputs=outputs,
            base_insecure=args.insecure_registry,
            ca_file=args.ca_file,
            progress=steps.write,
            on_warning=_warn,
        )
    if args.metadata_file:
        _write_metadata_file(args.metadata_file, result.metadata)
    if not _writes_stdout(outputs):
        print(result.digest)
    return 0
