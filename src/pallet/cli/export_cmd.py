"""``pallet export``: root filesystems and directories in, an image out (buildx-style flags).

Inputs become snapshots: ``--layer DIR[:DEST]`` and ``--rootfs [PLATFORM=]DIR`` register the
user's directories as committed snapshots *without copying them* (each on top of the previous
one), ``--base REF`` unpacks a stored image (its layer blobs are reused, not recomputed). The
resulting chain is handed to the image exporter as BuildKit's ``Source``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..metadata.store import Store
    from ..oci.descriptor import Descriptor, Platform
    from ..rootfs import Layer as RootfsLayer
    from .backend import Backend

__all__ = ["register"]


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


def register(sub: Any, common: Any, add: Any) -> None:
    from .progress import MODES

    sp = add(sub, "export", cmd_export, "export directories and root filesystems as an image")
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
    from .backend import add_arguments

    add_arguments(sp, snapshotter=True)
    sp.set_defaults(inputs=[])


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


def _apply_flags(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if not (
        args.env
        or args.entrypoint is not None
        or args.cmd is not None
        or args.workdir
        or args.user
        or args.label
        or args.expose
    ):
        return cfg
    c = dict(cfg.get("config") or {})
    if args.env:
        env = list(c.get("Env") or [])
        for e in args.env:
            k, sep, _ = e.partition("=")
            if not sep or not k:
                raise InvalidArgument(f"env {e!r}: want KEY=VALUE")
            env = [x for x in env if x.partition("=")[0] != k] + [e]
        c["Env"] = env
    if args.entrypoint is not None:
        c["Entrypoint"] = _split_cmd(args.entrypoint) or None
    if args.cmd is not None:
        c["Cmd"] = _split_cmd(args.cmd) or None
    if args.workdir:
        c["WorkingDir"] = args.workdir
    if args.user:
        c["User"] = args.user
    if args.label:
        lbl = dict(c.get("Labels") or {})
        for x in args.label:
            k, sep, v = x.partition("=")
            if not sep or not k:
                raise InvalidArgument(f"label {x!r}: want KEY=VALUE")
            lbl[k] = v
        c["Labels"] = lbl
    if args.expose:
        ports = dict(c.get("ExposedPorts") or {})
        for p in args.expose:
            num, _, proto = p.partition("/")
            if (
                not num.isdigit()
                or not 0 < int(num) < 65536
                or proto not in ("", "tcp", "udp", "sctp")
            ):
                raise InvalidArgument(f"port {p!r}: want PORT[/tcp|udp|sctp]")
            ports[f"{num}/{proto or 'tcp'}"] = {}
        c["ExposedPorts"] = ports
    out = dict(cfg)
    out["config"] = c
    return out


def _platform_of(spec: str) -> Platform:
    from ..oci.descriptor import Platform

    return Platform.parse(spec)


def _inputs(args: argparse.Namespace) -> tuple[list[str], dict[str, list[tuple[str, str, str]]]]:
    """Platforms (ids, in order) and per platform the (kind, dir, dest) inputs."""
    plats: list[str] = []
    for p in args.platform:
        for part in p.split(","):
            if part.strip():
                s = str(_platform_of(part))
                if s not in plats:
                    plats.append(s)
    generic: list[tuple[str, str, str]] = []
    specific: dict[str, list[tuple[str, str, str]]] = {}
    seen_layer = ""
    for kind, value in args.inputs:
        if kind == "rootfs" and seen_layer:
            raise InvalidArgument(
                f"rootfs {value}: comes after layer {seen_layer}; give every --rootfs before "
                "the --layer inputs (a root filesystem is diffed against the one below it)"
            )
        if kind == "layer":
            seen_layer = value
        plat = ""
        if kind == "rootfs" and "=" in value and not os.path.exists(value):
            plat, _, value = value.partition("=")
            plat = str(_platform_of(plat))
        if kind == "layer":
            d, sep, dest = value.rpartition(":") if ":" in value else (value, "", "")
            if not sep or not d:
                d, dest = value, ""
            item = ("layer", d, dest or "/")
        else:
            item = ("rootfs", value, "")
        if not os.path.isdir(item[1]):
            raise InvalidArgument(f"directory {item[1]}: not a directory")
        if plat:
            specific.setdefault(plat, []).append(item)
            if plat not in plats:
                plats.append(plat)
        else:
            generic.append(item)
    per: dict[str, list[tuple[str, str, str]]] = {}
    for p in plats or [""]:
        per[p] = [*generic, *specific.get(p, [])]
    return plats, per


def _resolve_base(
    backend: Backend, ref: str, args: argparse.Namespace, lease: str, progress: Any
) -> Descriptor:
    """The base image's root in the target store; pulled from its registry when missing."""
    from ..errors import NotFound
    from ..oci.descriptor import Platform

    try:
        return backend.images.get(ref).target
    except NotFound:
        pass
    from ..oci.reference import Reference
    from ..remote import Options, pull

    try:
        r = Reference.parse(ref)
    except InvalidArgument as exc:
        raise InvalidArgument(f"base {ref}: not in the store and not a reference: {exc}") from None
    plats: list[Platform | None] = [Platform.parse(p) for p in _platform_list(args)] or [None]
    options = _remote_options(args) or Options()
    if args.insecure_registry:
        options = options.with_insecure(r.registry)
    root: Descriptor | None = None
    from ..errors import Error

    for p in plats:
        try:
            root = pull(
                r,
                backend.content,
                layers=not _push_only(args),
                platform=p,
                lease=lease,
                options=options,
                on_progress=progress.write,
            )
        except Error as exc:
            exc.args = (f"base {ref}: not in the store, and pulling it failed: {exc}",)
            raise
    assert root is not None
    return root


_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _push_only(args: argparse.Namespace) -> bool:
    """Every output pushes without storing, and no --rootfs needs the base's files: the base's
    layers need not be downloaded (the registry mounts them), as BuildKit's lazy refs."""
    outs = getattr(args, "_outputs", [])
    return (
        bool(outs)
        and all(
            o["type"] == "image"
            and o.get("store") in _FALSE
            and o.get("push", "false") not in _FALSE
            and o.get("force-compression", "false") in _FALSE
            for o in outs
        )
        and not any(kind == "rootfs" for kind, _ in args.inputs)
    )


def _platform_list(args: argparse.Namespace) -> list[str]:
    return [x.strip() for p in args.platform for x in p.split(",") if x.strip()]


def _base_layers(
    backend: Backend, root: Descriptor, ref: str, platform: Platform
) -> tuple[list[RootfsLayer], bytes]:
    """The layers (blob, diffID) and config of ``platform``'s image under ``root``."""
    from ..images import children
    from ..oci import mediatypes as mt
    from ..oci.digest import Digest
    from ..rootfs import Layer

    desc = root
    if mt.is_index(desc.media_type):
        cands = [
            d
            for d in children(backend.content, desc)
            if d.platform is not None
            and d.platform.os == platform.os
            and d.platform.architecture == platform.architecture
            and (not platform.variant or d.platform.variant in ("", platform.variant))
        ]
        if not cands:
            raise InvalidArgument(f"base {ref}: no manifest for platform {platform}")
        desc = cands[0]
    kids = children(backend.content, desc)
    cfg_desc, layer_descs = kids[0], kids[1:]
    with backend.content.open(cfg_desc) as f:
        cfg_bytes = f.read()
    try:
        cfg = json.loads(cfg_bytes)
    except ValueError as exc:
        raise InvalidArgument(f"base {ref}: config {cfg_desc.digest}: {exc}") from None
    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layer_descs):
        raise InvalidArgument(f"base {ref}: mismatched image rootfs and manifest layers")
    layers = [
        Layer(blob=d, diff_id=Digest.parse(x)) for d, x in zip(layer_descs, diff_ids, strict=True)
    ]
    return layers, cfg_bytes


def _layer_labels(layer: RootfsLayer) -> dict[str, str]:
    from .. import labels as L

    return {
        L.LAYER_BLOB: str(layer.blob.digest),
        L.LAYER_MEDIA_TYPE: layer.blob.media_type,
        L.LAYER_SIZE: str(layer.blob.size),
        L.LAYER_DIFF_ID: str(layer.diff_id),
    }


def _base_chain(
    db: Store,
    backend: Backend,
    layers: Sequence[RootfsLayer],
    materialize: bool,
    lease: str,
    warn: Any,
) -> str:
    """Snapshots for the base layers: lazy records, or (for a --rootfs on top) unpacked ones."""
    import secrets
    from dataclasses import replace

    from .. import labels as L
    from ..rootfs import apply_layers, chain_ids

    sn = db.snapshotter()
    if not layers:
        return ""
    if materialize:
        top = apply_layers(sn, backend.content, layers, lease=lease, on_warning=warn)
        for layer, chain in zip(layers, chain_ids([x.diff_id for x in layers]), strict=True):
            info = sn.stat(chain)
            new = _layer_labels(layer)
            sn.update(
                replace(info, labels={**info.labels, **new}),
                [f"labels.{k}" for k in new],
            )
        return str(top)
    parent = ""
    for layer in layers:
        name = f"base-{secrets.token_hex(8)}"
        sn.commit_lazy(
            name,
            parent,
            labels={**_layer_labels(layer), f"{L.GC_REF_CONTENT}.layer": str(layer.blob.digest)},
            lease=lease,
        )
        parent = name
    return parent


def _stack(db: Store, parent: str, items: Sequence[tuple[str, str, str]], lease: str) -> str:
    import secrets

    from .. import labels as L

    sn = db.snapshotter()
    for kind, d, dest in items:
        name = f"input-{secrets.token_hex(8)}"
        labels = {L.LAYER_DEST: dest} if kind == "layer" else {}
        sn.commit_dir(name, d, parent, labels=labels, lease=lease)
        parent = name
    return parent


def _decode_response(response: Mapping[str, str]) -> dict[str, Any]:
    """buildx's metadata file: base64 JSON objects decoded (``containerimage.descriptor``)."""
    import base64
    import binascii

    out: dict[str, Any] = {}
    for k, v in response.items():
        out[k] = v
        if k == "containerimage.descriptor":
            try:
                obj = json.loads(base64.b64decode(v, validate=True))
            except (ValueError, binascii.Error):
                continue
            if isinstance(obj, dict):
                out[k] = obj
    return out


def _write_metadata_file(path: str, response: Mapping[str, str]) -> None:
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(_decode_response(response), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InvalidArgument(f"metadata file {path}: {exc.strerror or exc}") from None


def _warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from ..exporter import Source
    from ..exporter.image import ImageExporter
    from ..exporter.options import parse_output
    from ..leases import temporary
    from ..oci.descriptor import Platform
    from ..progress import NullProgress
    from . import progress as _progress
    from .backend import open_backend
    from .main import _db

    outputs = [parse_output(o) for o in args.output] or [{"type": "image"}]
    if args.tag:
        outputs[0]["name"] = ",".join(filter(None, [outputs[0].get("name", ""), *args.tag]))
    args._outputs = outputs
    for o in outputs:
        if o["type"] not in ("image", "oci", "docker"):
            raise InvalidArgument(f"output type {o['type']!r}: want image, oci or docker")
    plats, per = _inputs(args)
    base_cfg_user: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as f:
                base_cfg_user = json.load(f)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"config {args.config}: {exc}") from exc
        if not isinstance(base_cfg_user, dict):
            raise InvalidArgument(f"config {args.config}: not a JSON object")
    _apply_flags({}, args)  # validate the flags before any I/O
    epoch_env = os.environ.get("SOURCE_DATE_EPOCH")
    if args.metadata_file and not os.path.isdir(
        os.path.dirname(os.path.abspath(args.metadata_file))
    ):
        raise InvalidArgument(f"metadata file {args.metadata_file}: directory does not exist")
    to_stdout = any(
        o["type"] != "image"
        and o.get("dest", "-") in ("", "-")
        and o.get("tar", "true") not in ("false", "0", "f", "F", "FALSE", "False")
        for o in outputs
    )

    db = _db(args)
    backend = open_backend(args)
    try:
        exporters = []
        for o in outputs:
            exporter = ImageExporter(
                content=backend.content,
                images=backend.images,
                leases=backend.leases,
                snapshotter=db.snapshotter(),
                kind=o["type"],
                unpacker=backend.unpacker,
                stdout=sys.stdout.buffer,
                default_platform=Platform.parse(plats[0]) if len(plats) == 1 else None,
                remote_options=_remote_options(args),
                on_warning=_warn,
            )
            attrs = {k: v for k, v in o.items() if k != "type"}
            exporters.append(exporter.resolve(attrs))  # every option checked before any I/O
        response: dict[str, str] = {}
        with contextlib.ExitStack() as stack:
            slease = stack.enter_context(temporary(db.leases))
            tlease = (
                slease
                if backend.kind == "embedded"
                else stack.enter_context(temporary(backend.leases))
            )
            metadata: dict[str, bytes] = {}
            if epoch_env is not None:
                metadata["source.date.epoch"] = epoch_env.encode()
            refs: dict[str, str] = {}
            ref: str | None = None
            pull_progress = (
                _progress.make(args.progress, vertex=f"resolving {args.base}")
                if args.base
                else None
            )
            base_root = (
                _resolve_base(backend, args.base, args, tlease, pull_progress)
                if args.base
                else None
            )
            if pull_progress is not None:
                getattr(pull_progress, "close", lambda e: None)("")
            for pid in plats or [""]:
                platform = Platform.parse(pid) if pid else Platform.default()
                parent, cfg_bytes = "", b""
                if base_root is not None:
                    layers, cfg_bytes = _base_layers(backend, base_root, args.base, platform)
                    needs_dir = any(kind == "rootfs" for kind, _, _ in per[pid])
                    parent = _base_chain(db, backend, layers, needs_dir, slease, _warn)
                top = _stack(db, parent, per[pid], slease) or None
                cfg: dict[str, Any] = json.loads(cfg_bytes) if cfg_bytes else {}
                if base_cfg_user:
                    cfg = base_cfg_user
                cfg = _apply_flags(cfg, args)
                suffix = f"/{pid}" if plats else ""
                if cfg:
                    if "architecture" not in cfg:
                        cfg = {"architecture": platform.architecture, "os": platform.os, **cfg}
                    metadata["containerimage.config" + suffix] = json.dumps(cfg).encode()
                if cfg_bytes:
                    metadata["containerimage.base.config" + suffix] = cfg_bytes
                if plats:
                    refs[pid] = top or ""
                else:
                    ref = top
            if plats:
                metadata["refs.platforms"] = json.dumps(
                    {
                        "Platforms": [
                            {"ID": p, "Platform": Platform.parse(p).to_json()} for p in plats
                        ]
                    }
                ).encode()
            src = Source(ref=ref, refs=refs, metadata=metadata)
            for inst in exporters:
                renderer = _progress.make(args.progress, vertex=inst.name)
                inst.exporter.progress = renderer
                error = ""
                try:
                    response.update(inst.export(src))
                except BaseException as exc:
                    error = str(exc) or type(exc).__name__
                    raise
                finally:
                    getattr(renderer, "close", lambda e: None)(error)
                    inst.exporter.progress = NullProgress()
    finally:
        backend.close()
    if args.metadata_file:
        _write_metadata_file(args.metadata_file, response)
    if not to_stdout:
        print(response.get("containerimage.digest", ""))
    return 0


def _remote_options(args: argparse.Namespace) -> Any:
    from ..remote import Options

    return Options(ca_file=args.ca_file) if args.ca_file else None
