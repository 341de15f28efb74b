"""The export behind :meth:`pallet.Store.export` (and ``pallet export``): directories in, an
image out.

An export is BuildKit's solve without a build. In order:

1. Everything that can be checked without I/O is checked first, so that a bad call leaves
   nothing behind: the platforms, every output's options (the image exporter's ``resolve``,
   with BuildKit's texts), the inputs and the config.
2. Under temporary leases (deleted at the end: what survives is what an image record reaches),
   the base is resolved (from the store, else pulled) and its layers recorded as snapshots: lazy
   ones whose blobs are reused as they are, or unpacked ones when a :class:`~pallet.RootFS` must
   be diffed against them. The input directories are registered on top, each a committed
   snapshot of the user's directory, without a copy.
3. The config (the base's, or ``Config.raw``, then the :class:`~pallet.Config` fields) goes into
   the frontend metadata, and each output's exporter gets every platform's chain as BuildKit's
   ``Source``; its response becomes the :class:`~pallet.ExportResult`.

Progress: every event carries its step (``Progress.vertex``): ``resolving <base>``, then one
per output (``exporting to image``, ``exporting to oci image format``, ...). A step reports
itself as an event whose ``id`` is its name: started when it begins, completed (with the error,
if any) when it ends; BuildKit shows each as one vertex.

``import pallet`` imports this module for :func:`parse_output`, so its top imports only the
standard library and pallet's light modules; the exporter, the registry client and the stores
are imported by the functions that use them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from ._types import Config, ExportResult, Layer, RootFS
from .errors import Error, InvalidArgument, NotFound
from .oci.descriptor import Platform
from .progress import NullProgress, Progress, ProgressWriter, status

if TYPE_CHECKING:
    from ._backend import Backend
    from .exporter.image import ImageExporterInstance
    from .metadata.store import Store as Embedded
    from .oci.descriptor import Descriptor
    from .remote import Options as RemoteOptions
    from .rootfs import Layer as BlobLayer

__all__ = [
    "BOOL_ATTRS",
    "Input",
    "OutputKeywords",
    "OutputSpec",
    "PlatformSpec",
    "decode_response",
    "export",
    "merge_config",
    "parse_output",
]

#: what an export is made of
Input = Layer | RootFS
#: one platform, several, or several with their own inputs (see :meth:`pallet.Store.export`)
PlatformSpec = (
    str
    | Platform
    | Sequence[str | Platform]
    | Mapping[str, Sequence[Input]]
    | Mapping[Platform, Sequence[Input]]
)
#: one output: ``-o`` text, or its attrs (``dest`` may be a path or a binary file object)
OutputSpec = str | Mapping[str, "str | os.PathLike[str] | BinaryIO"]

_KINDS = ("image", "oci", "docker")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_TRUE = ("", "1", "t", "T", "TRUE", "true", "True")
_log = logging.getLogger("pallet")


def parse_output(spec: str) -> dict[str, str]:
    """One ``-o``/``--output`` value of ``docker buildx build``, read exactly as buildx reads it:
    ``type=image,name=example.com/app:1,push=true`` -> ``{"type": "image", "name": …}``.

    The value is Go CSV (``"name=a,b"`` is one field; a stray or unbalanced quote is an error
    with Go's text and column), each field ``key=value``; keys are lower-cased, ``name`` may
    repeat (the values join with ``,``), ``type`` defaults to ``image``. The result is what
    :meth:`pallet.Store.export` takes in ``outputs``.

    Example::

        >>> pallet.parse_output('type=oci,dest=app.tar,"name=a:1,b:1"')
        {'type': 'oci', 'dest': 'app.tar', 'name': 'a:1,b:1'}

    Raises:
        InvalidArgument: ``output '<spec>': <why>``.
    """
    from .exporter import options

    return options.parse_output(spec)


# -- outputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Output:
    """One output: the exporter kind, its attrs (without ``type``), and a file object for
    ``dest=-`` (None: standard output)."""

    kind: str
    attrs: dict[str, str]
    stream: BinaryIO | None = None


def _kind(value: object) -> str:
    if value not in _KINDS:
        raise InvalidArgument(f"output type {value!r}: want image, oci or docker")
    return str(value)


def _is_stream(value: object) -> bool:
    """A file object to write a tarball to: a binary one, or a refusal naming it."""
    if not callable(getattr(value, "write", None)):
        return False
    if isinstance(value, io.TextIOBase):
        raise InvalidArgument(
            f"dest {value!r}: a text stream; want a binary file object (open(…, 'wb'), BytesIO)"
        )
    return True


def _check_dest(spec: _Output) -> None:
    """A layout directory's dest: the exporter writes into an existing directory, or makes it
    (and its parents); a tarball's dest is a file, never a directory. Anything else in the way
    is the caller's mistake, said before any I/O."""
    dest, tar = spec.attrs.get("dest"), spec.attrs.get("tar")
    if spec.kind == "image" or not dest:
        return
    if tar in _FALSE:
        if os.path.lexists(dest) and not os.path.isdir(dest):
            raise InvalidArgument(f"dest {dest}: exists and is not a directory")
    elif dest != "-" and tar in (None, *_TRUE) and os.path.isdir(dest):
        raise InvalidArgument(f"dest {dest}: is a directory (tar=False writes a layout)")


def _raw_output(i: int, spec: OutputSpec) -> _Output:
    """An entry of ``outputs``: ``-o`` text, or its attrs as a mapping."""
    if isinstance(spec, str):
        attrs: dict[str, Any] = dict(parse_output(spec))
    elif isinstance(spec, Mapping):
        attrs = dict(spec)
    else:
        raise InvalidArgument(f"outputs[{i}] {spec!r}: want a mapping of attrs or -o text")
    kind = _kind(attrs.pop("type", "image"))
    stream: BinaryIO | None = None
    dest = attrs.get("dest")
    if dest is not None and _is_stream(dest):
        if attrs.get("tar") in _FALSE:
            raise InvalidArgument(
                f"outputs[{i}]: tar=false writes a directory: want a path as dest"
            )
        stream, attrs["dest"] = dest, "-"
    elif isinstance(dest, os.PathLike):
        attrs["dest"] = os.fspath(dest)
    for k, v in attrs.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"outputs[{i}] {k!r}: {v!r}: want a string")
    return _Output(kind, attrs, stream)


_ANNOTATION = re.compile(
    r"([a-z-]+(?:\[[A-Za-z0-9_/-]+\])?(?:,[a-z-]+(?:\[[A-Za-z0-9_/-]+\])?)*):(.*)\Z", re.S
)


def _annotation_attrs(annotations: Mapping[str, str]) -> dict[str, str]:
    """buildx's ``--annotation`` keys (``[TYPE[PLATFORM],…:]KEY``) as exporter attrs:
    ``index:org.x`` -> ``annotation-index.org.x``; no type: ``annotation.KEY`` (the manifest)."""
    from .exporter.annotations import parse_annotation_key

    out: dict[str, str] = {}
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument(f"annotation {key!r}: {value!r}: want a string")
        m = _ANNOTATION.match(key)
        scopes, name = (m.group(1).split(","), m.group(2)) if m else ([""], key)
        for scope in scopes:
            typ, bracket, plat = scope.partition("[")
            attr = f"annotation{'-' + typ if typ else ''}{bracket}{plat}.{name}"
            if parse_annotation_key(attr) is None:
                raise InvalidArgument(
                    f"annotation {key!r}: not an annotation key (want [TYPE[PLATFORM]:]KEY, "
                    "KEY without spaces)"
                )
            out[attr] = value
    return out


def _bool_attr(name: str, value: object) -> str:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} {value!r}: want True or False")
    return "true" if value else "false"


#: the boolean keywords of :meth:`pallet.Store.export` and the exporter attrs they set
BOOL_ATTRS: Mapping[str, str] = {
    "push": "push",
    "push_by_digest": "push-by-digest",
    "insecure": "registry.insecure",
    "store": "store",
    "unpack": "unpack",
    "force_compression": "force-compression",
    "oci_mediatypes": "oci-mediatypes",
    "oci_artifact": "oci-artifact",
    "rewrite_timestamp": "rewrite-timestamp",
    "dangling_name_empty_only": "danging-name-empty-only",  # sic, BuildKit's spelling
    "name_canonical": "name-canonical",
    "attestation_inline": "attestation-inline",
    "prefer_nondist_layers": "prefer-nondist-layers",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputKeywords:
    """The one output that the keywords of :meth:`pallet.Store.export` describe.

    ``None`` is "not given": the exporter's default applies, and no attr is set, so the
    exporter's own checks ("not supported by the oci exporter") see only what the caller
    chose.
    """

    output: str | None = None
    names: str | Sequence[str] | None = None
    dest: str | os.PathLike[str] | BinaryIO | None = None
    tar: bool | None = None
    flags: Mapping[str, bool | None] = field(default_factory=dict)
    compression: str | None = None
    compression_level: int | None = None
    annotations: Mapping[str, str] | None = None
    dangling_name_prefix: str | None = None
    options: Mapping[str, str] | None = None

    def given(self) -> list[str]:
        """The keywords the caller set."""
        out = [
            f.name
            for f in fields(self)
            if f.name != "flags" and getattr(self, f.name) not in (None, (), [], {})
        ]
        return out + [k for k, v in self.flags.items() if v is not None]

    def resolve(self) -> _Output:
        """The output as the exporter's attrs (checked for types; values by the exporter)."""
        kind = _kind(self.output or "image")
        attrs: dict[str, str] = {}
        given: dict[str, str] = {}  # attr -> keyword, to name a clash with ``options``

        def put(keyword: str, attr: str, value: str) -> None:
            attrs[attr] = value
            given[attr] = keyword

        if self.names is not None and (
            isinstance(self.names, bytes) or not isinstance(self.names, str | Sequence)
        ):
            raise InvalidArgument(f"names {self.names!r}: want an image reference or a list")
        names = [self.names] if isinstance(self.names, str) else list(self.names or ())
        for n in names:
            if not isinstance(n, str) or not n or "," in n:
                raise InvalidArgument(f"name {n!r}: want one image reference per item")
        if names:
            put("names", "name", ",".join(names))
        for keyword, value in self.flags.items():
            if value is not None:
                put(keyword, BOOL_ATTRS[keyword], _bool_attr(keyword, value))
        if self.compression is not None:
            if self.compression not in ("uncompressed", "gzip", "zstd"):
                raise InvalidArgument(
                    f"compression {self.compression!r}: want 'uncompressed', 'gzip' or 'zstd'"
                )
            put("compression", "compression", self.compression)
        level = self.compression_level
        if level is not None:
            if isinstance(level, bool) or not isinstance(level, int):
                raise InvalidArgument(f"compression_level {level!r}: want an int")
            put("compression_level", "compression-level", str(level))
        if self.dangling_name_prefix is not None:
            if not isinstance(self.dangling_name_prefix, str):
                raise InvalidArgument(
                    f"dangling_name_prefix {self.dangling_name_prefix!r}: want a string"
                )
            put("dangling_name_prefix", "dangling-name-prefix", self.dangling_name_prefix)
        for attr, text in _annotation_attrs(self.annotations or {}).items():
            put("annotations", attr, text)
        stream: BinaryIO | None = None
        dest = self.dest
        if kind == "image":
            if dest is not None or self.tar is not None:
                raise InvalidArgument(
                    "dest: the image output writes to the store; dest and tar are for "
                    "output='oci' or 'docker'"
                )
        else:
            if dest is None:
                raise InvalidArgument(
                    f"output {kind}: dest is required (a path, a binary file object, or '-' "
                    "for standard output)"
                )
            if not isinstance(dest, str | os.PathLike):
                if not _is_stream(dest):
                    raise InvalidArgument(f"dest {dest!r}: want a path or a binary file object")
                if self.tar is False:
                    raise InvalidArgument(
                        f"output {kind}: tar=False writes a directory: want a path as dest"
                    )
                stream = dest
                put("dest", "dest", "-")
            else:
                put("dest", "dest", os.fspath(dest))
            if self.tar is not None:
                put("tar", "tar", _bool_attr("tar", self.tar))
        for k, v in (self.options or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidArgument(f"option {k!r}: {v!r}: want a string")
            if k == "type":
                raise InvalidArgument("option 'type': give the output kind as output=")
            if k in given:
                raise InvalidArgument(f"option {k!r}: also given as the keyword {given[k]}")
            attrs[k] = v
        return _Output(kind, attrs, stream)


# -- inputs and platforms ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """Platforms and inputs: ``ids`` are the index's platforms in order (empty: one image, of
    ``single`` or this machine's platform); ``stacks`` the inputs of each, bottom first."""

    ids: list[str]
    single: Platform | None
    stacks: dict[str, list[Input]]


def _platform(value: object) -> Platform:
    if isinstance(value, Platform):
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"platform {value!r}: want a string like 'linux/amd64'")
    return Platform.parse(value.strip())


def _split(spec: str) -> list[str]:
    return [part for part in spec.split(",") if part.strip()]


def _plan(inputs: Sequence[Input], platform: PlatformSpec | None) -> _Plan:
    """Check the platforms and the inputs (directories exist, every RootFS below the Layers)."""
    if isinstance(inputs, str | bytes | os.PathLike):
        raise InvalidArgument(f"inputs {inputs!r}: want a list of pallet.Layer and pallet.RootFS")
    common: list[Input] = [inputs] if isinstance(inputs, Layer | RootFS) else list(inputs)
    specific: dict[str, list[Input]] = {}
    ids: list[str] = []
    single: Platform | None = None
    if isinstance(platform, Mapping):
        for key, items in platform.items():
            pid = str(_platform(key))
            if pid in specific:
                raise InvalidArgument(f"platform {key}: given twice")
            if isinstance(items, Layer | RootFS | str):
                raise InvalidArgument(f"platform {key}: want a list of inputs, not {items!r}")
            specific[pid] = list(items)
            ids.append(pid)
    elif isinstance(platform, Platform) or (
        isinstance(platform, str) and len(_split(platform)) == 1
    ):
        single = _platform(platform)
    elif platform is not None:
        if not isinstance(platform, str | Sequence):
            raise InvalidArgument(
                f"platform {platform!r}: want a platform like 'linux/amd64', a list of them, "
                "or a mapping of platform to inputs"
            )
        specs = _split(platform) if isinstance(platform, str) else list(platform)
        if not specs:
            raise InvalidArgument(f"platform {platform!r}: want a platform like 'linux/amd64'")
        for spec in specs:
            pid = str(_platform(spec))
            if pid not in ids:
                ids.append(pid)
    for item in [*common, *(x for items in specific.values() for x in items)]:
        if not isinstance(item, Layer | RootFS):
            raise InvalidArgument(f"input {item!r}: want pallet.Layer or pallet.RootFS")
        kind = "layer" if isinstance(item, Layer) else "rootfs"
        if not isinstance(item.path, str | os.PathLike):
            raise InvalidArgument(f"{kind} {item.path!r}: want a directory path")
        path = os.fspath(item.path)
        if not isinstance(path, str):
            raise InvalidArgument(f"{kind} {item.path!r}: want a directory path as str")
        if not os.path.isdir(path):
            raise InvalidArgument(f"directory {path}: not a directory")
        if isinstance(item, Layer):
            dest = item.dest
            if not isinstance(dest, str) or "\0" in dest or ".." in dest.split("/"):
                raise InvalidArgument(
                    f"layer {path}: dest {dest!r}: want a path without '..' or NUL"
                )
    stacks = {pid: [*common, *specific.get(pid, [])] for pid in ids or [""]}
    for stack in stacks.values():
        below: Layer | None = None
        for item in stack:
            if isinstance(item, Layer):
                below = below or item
            elif below is not None:
                raise InvalidArgument(
                    f"rootfs {item.path}: comes after layer {below.path}; give every RootFS "
                    "before the Layers (a root filesystem is diffed against the one below it)"
                )
    return _Plan(ids, single, stacks)


# -- config -----------------------------------------------------------------------------------


def _strings(what: str, value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidArgument(f"config {what} {value!r}: want a list of strings")
    if not all(isinstance(x, str) for x in value):
        raise InvalidArgument(f"config {what} {value!r}: want a list of strings")
    return list(value)


def _pairs(what: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"config {what} {value!r}: want a mapping of strings")
    for k, v in value.items():
        if not isinstance(k, str) or not k or not isinstance(v, str):
            raise InvalidArgument(f"config {what} {k!r}: {v!r}: want a non-empty key, a string")
        if what == "env" and "=" in k:
            raise InvalidArgument(f"config env {k!r}: a key must not contain '='")
    return dict(value)


def _port(spec: object) -> str:
    text = str(spec)
    num, _, proto = text.partition("/")
    if (
        isinstance(spec, bool)
        or not num.isdigit()
        or not 0 < int(num) < 65536
        or proto not in ("", "tcp", "udp", "sctp")
    ):
        raise InvalidArgument(f"port {text!r}: want PORT[/tcp|udp|sctp]")
    return f"{num}/{proto or 'tcp'}"


def _check_config(config: Config) -> Config:
    """Every field's type and value; returns ``config`` with its ports normalised
    (``PORT/PROTO``), as :func:`merge_config` takes it (the merge repeats nothing of this)."""
    if not isinstance(config, Config):
        raise InvalidArgument(f"config {config!r}: want pallet.Config")
    for what in ("cmd", "entrypoint"):
        value = getattr(config, what)
        if value is not None:
            _strings(what, value)
    _pairs("env", config.env)
    _pairs("labels", config.labels)
    for what in ("workdir", "user"):
        value = getattr(config, what)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"config {what} {value!r}: want a string")
    if isinstance(config.exposed_ports, str | bytes) or not isinstance(
        config.exposed_ports, Sequence
    ):
        raise InvalidArgument(f"config exposed_ports {config.exposed_ports!r}: want a list")
    ports = tuple(_port(p) for p in config.exposed_ports)
    if config.raw is not None:
        if not isinstance(config.raw, Mapping):
            raise InvalidArgument(f"config raw {config.raw!r}: want a JSON object")
        try:
            json.dumps(config.raw)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"config raw: not JSON: {exc}") from None
    return replace(config, exposed_ports=ports)


def merge_config(image_config: Mapping[str, Any], config: Config) -> dict[str, Any]:
    """``image_config`` (an image config: the base's, or ``Config.raw``) with the fields of
    ``config`` set in its ``config`` object: ``env`` and ``labels`` merge by key (a key that
    is set again moves to the end of ``Env``), the others replace; an empty ``cmd`` or
    ``entrypoint`` clears it. Without any field, ``image_config`` is returned unchanged.
    ``config`` is as :func:`_check_config` returns it: checked, its ports ``PORT/PROTO``."""
    cfg = dict(image_config)
    if not (
        config.env
        or config.entrypoint is not None
        or config.cmd is not None
        or config.workdir is not None
        or config.user is not None
        or config.labels
        or config.exposed_ports
    ):
        return cfg
    c = dict(cfg.get("config") or {})
    if config.env:
        env = list(c.get("Env") or [])
        for k, v in config.env.items():
            env = [x for x in env if x.partition("=")[0] != k] + [f"{k}={v}"]
        c["Env"] = env
    if config.entrypoint is not None:
        c["Entrypoint"] = list(config.entrypoint) or None
    if config.cmd is not None:
        c["Cmd"] = list(config.cmd) or None
    if config.workdir is not None:
        c["WorkingDir"] = config.workdir
    if config.user is not None:
        c["User"] = config.user
    if config.labels:
        c["Labels"] = {**(c.get("Labels") or {}), **config.labels}
    if config.exposed_ports:
        ports = dict(c.get("ExposedPorts") or {})
        for p in config.exposed_ports:
            ports[p] = {}
        c["ExposedPorts"] = ports
    cfg["config"] = c
    return cfg


# -- progress ---------------------------------------------------------------------------------


class _Step:
    """A writer that stamps each event with its step (``vertex``) and hands it to the caller."""

    __slots__ = ("callback", "vertex")

    def __init__(self, callback: Callable[[Progress], None], vertex: str) -> None:
        self.callback = callback
        self.vertex = vertex

    def write(self, p: Progress, /) -> None:
        self.callback(replace(p, vertex=self.vertex))


def _step(callback: Callable[[Progress], None] | None, vertex: str) -> ProgressWriter:
    return NullProgress() if callback is None else _Step(callback, vertex)


# -- base image -------------------------------------------------------------------------------


def _resolve_base(
    backend: Backend,
    ref: str,
    platforms: Sequence[Platform | None],
    *,
    lazy: bool,
    options: RemoteOptions,
    insecure: bool,
    lease: str,
    progress: ProgressWriter,
) -> Descriptor:
    """The base's root in the target store, as named or in its normalised form; else pulled
    from its registry (manifests and configs only when ``lazy``)."""
    from .oci.reference import Reference
    from .remote import pull

    try:
        return backend.images.get(ref).target
    except NotFound:
        pass
    try:
        r = Reference.parse(ref)
    except InvalidArgument as exc:
        raise InvalidArgument(f"base {ref}: not in the store and not a reference: {exc}") from None
    if str(r) != ref:
        try:
            return backend.images.get(str(r)).target
        except NotFound:
            pass
    if insecure:
        options = options.with_insecure(r.registry)
    root: Descriptor | None = None
    for p in platforms:
        try:
            root = pull(
                r,
                backend.content,
                layers=not lazy,
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


def _base_layers(
    backend: Backend,
    root: Descriptor,
    ref: str,
    platform: Platform,
    mismatch: Callable[[str], None] | None = None,
) -> tuple[list[BlobLayer], bytes, dict[str, Any]]:
    """The layers (blob, diffID) and config (its bytes and parsed) of ``platform``'s image
    under ``root``: an index's manifest for it, or a single manifest whose config is of it.

    A single manifest of another platform is an error, unless ``mismatch`` is given (the
    platform was not asked for, only defaulted): then it is reported there and used, as
    BuildKit warns and goes on."""
    from .images import children
    from .oci import mediatypes as mt
    from .oci.digest import Digest
    from .rootfs import Layer as BlobLayer

    desc = root
    indexed = mt.is_index(desc.media_type)
    if indexed:
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
    if not isinstance(cfg, dict):
        raise InvalidArgument(f"base {ref}: config {cfg_desc.digest}: not a JSON object")
    if not indexed:
        variant = cfg.get("variant") or ""
        if (
            cfg.get("os") != platform.os
            or cfg.get("architecture") != platform.architecture
            or (platform.variant and variant and variant != platform.variant)
        ):
            found = "/".join(filter(None, [cfg.get("os"), cfg.get("architecture"), variant]))
            if mismatch is None:
                raise InvalidArgument(f"base {ref}: no manifest for platform {platform}")
            mismatch(f"base {ref}: its platform {found} does not match the default {platform}")
    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layer_descs):
        raise InvalidArgument(f"base {ref}: mismatched image rootfs and manifest layers")
    layers = [
        BlobLayer(blob=d, diff_id=Digest.parse(x))
        for d, x in zip(layer_descs, diff_ids, strict=True)
    ]
    return layers, cfg_bytes, cfg


def _layer_labels(layer: BlobLayer) -> dict[str, str]:
    from . import labels as L

    return {
        L.LAYER_BLOB: str(layer.blob.digest),
        L.LAYER_MEDIA_TYPE: layer.blob.media_type,
        L.LAYER_SIZE: str(layer.blob.size),
        L.LAYER_DIFF_ID: str(layer.diff_id),
    }


def _base_chain(
    db: Embedded,
    backend: Backend,
    layers: Sequence[BlobLayer],
    materialize: bool,
    lease: str,
    warn: Callable[[str], None],
) -> str:
    """Snapshots for the base layers: lazy records, or (for a RootFS on top) unpacked ones."""
    import secrets

    from . import labels as L
    from .rootfs import apply_layers, chain_ids

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


def _stack(db: Embedded, parent: str, items: Sequence[Input], lease: str) -> str:
    """The input directories as committed snapshots on ``parent``; returns the top's key."""
    import secrets

    from . import labels as L

    sn = db.snapshotter()
    for item in items:
        name = f"input-{secrets.token_hex(8)}"
        labels = {L.LAYER_DEST: item.dest or "/"} if isinstance(item, Layer) else {}
        sn.commit_dir(name, os.fspath(item.path), parent, labels=labels, lease=lease)
        parent = name
    return parent


# -- the response -----------------------------------------------------------------------------


def decode_response(response: Mapping[str, str]) -> dict[str, Any]:
    """buildx's metadata file: the exporter's response with its base64 JSON objects
    (``containerimage.descriptor``) decoded."""
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


# -- export -----------------------------------------------------------------------------------


def _push_only(instances: Sequence[ImageExporterInstance], plan: _Plan) -> bool:
    """Every output pushes without storing and no RootFS needs the base's files: the base's
    layers need not be downloaded (the registry mounts them), as BuildKit's lazy refs."""
    return all(
        inst.exporter.kind == "image"
        and not inst.opts.store
        and inst.opts.push
        and not inst.opts.force_compression
        for inst in instances
    ) and not any(isinstance(x, RootFS) for stack in plan.stacks.values() for x in stack)


def export(
    backend: Backend,
    inputs: Sequence[Input],
    *,
    platform: PlatformSpec | None,
    base: str | None,
    config: Config | None,
    keywords: OutputKeywords,
    outputs: Sequence[OutputSpec] | None,
    source_date_epoch: int | None,
    base_insecure: bool,
    ca_file: str | os.PathLike[str] | None,
    progress: Callable[[Progress], None] | None,
    on_warning: Callable[[str], None] | None,
) -> ExportResult:
    """:meth:`pallet.Store.export` on ``backend``; ``keywords`` are its output keywords."""
    import contextlib

    from .exporter import Source
    from .exporter.image import ImageExporter
    from .leases import temporary
    from .remote import Options

    # -- every check before any I/O
    if outputs is not None:
        if given := keywords.given():
            raise InvalidArgument(
                f"outputs: describe every output in outputs, or one with the keywords, not "
                f"both (given: {', '.join(given)})"
            )
        if isinstance(outputs, str | Mapping):
            raise InvalidArgument(f"outputs {outputs!r}: want a list of outputs")
        specs = [_raw_output(i, o) for i, o in enumerate(outputs)]
        if not specs:
            raise InvalidArgument("outputs: empty; give at least one output")
    else:
        specs = [keywords.resolve()]
    if progress is not None and not callable(progress):
        raise InvalidArgument(f"progress {progress!r}: want a callable taking pallet.Progress")
    for spec in specs:
        _check_dest(spec)
    plan = _plan(inputs, platform)
    config = _check_config(config or Config())
    if base is not None and (not isinstance(base, str) or not base):
        raise InvalidArgument(f"base {base!r}: want an image name")
    if source_date_epoch is not None and (
        isinstance(source_date_epoch, bool)
        or not isinstance(source_date_epoch, int)
        or not -(2**63) <= source_date_epoch < 2**63
    ):
        raise InvalidArgument(f"source_date_epoch {source_date_epoch!r}: want seconds as an int")
    if ca_file is not None and not isinstance(ca_file, str | os.PathLike):
        raise InvalidArgument(f"ca_file {ca_file!r}: want a path")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise InvalidArgument(f"ca file {os.fspath(ca_file)}: not a file")
    warn = on_warning or _log.warning
    options = Options(ca_file=os.fspath(ca_file)) if ca_file is not None else None
    if len(plan.ids) == 1:
        default_platform: Platform | None = Platform.parse(plan.ids[0])
    else:
        default_platform = plan.single
    db = backend.embedded
    instances = []
    for spec in specs:
        exporter = ImageExporter(
            content=backend.content,
            images=backend.images,
            leases=backend.leases,
            snapshotter=db.snapshotter(),
            kind=spec.kind,
            unpacker=backend.unpacker,
            stdout=spec.stream,
            default_platform=default_platform,
            remote_options=options,
            on_warning=warn,
        )
        instances.append(exporter.resolve(spec.attrs))  # every option checked before any I/O

    # -- snapshots of every platform's chain, then each output
    epoch = os.environ.get("SOURCE_DATE_EPOCH") if source_date_epoch is None else None
    metadata: dict[str, bytes] = {}
    if source_date_epoch is not None:
        metadata["source.date.epoch"] = str(source_date_epoch).encode()
    elif epoch is not None:
        metadata["source.date.epoch"] = epoch.encode()
    response: dict[str, str] = {}
    names: list[str] = []
    with contextlib.ExitStack() as stack:
        slease = stack.enter_context(temporary(db.leases))
        tlease = (
            slease if backend.kind == "embedded" else stack.enter_context(temporary(backend.leases))
        )
        refs: dict[str, str] = {}
        ref: str | None = None
        base_root = None
        if base is not None:
            vertex = f"resolving {base}"
            writer = _step(progress, vertex)
            with status(writer, vertex):
                base_root = _resolve_base(
                    backend,
                    base,
                    [Platform.parse(p) for p in plan.ids] or [plan.single],
                    lazy=_push_only(instances, plan),
                    options=options or Options(),
                    insecure=base_insecure,
                    lease=tlease,
                    progress=writer,
                )
        for pid, items in plan.stacks.items():
            target = Platform.parse(pid) if pid else plan.single or Platform.default()
            parent, cfg_bytes = "", b""
            cfg: dict[str, Any] = {}
            if base is not None:
                assert base_root is not None
                asked = bool(pid) or plan.single is not None
                layers, cfg_bytes, cfg = _base_layers(
                    backend, base_root, base, target, None if asked else warn
                )
                rootfs = any(isinstance(x, RootFS) for x in items)
                parent = _base_chain(db, backend, layers, rootfs, slease, warn)
            top = _stack(db, parent, items, slease) or None
            if config.raw is not None:
                cfg = dict(config.raw)
            cfg = merge_config(cfg, config)
            suffix = f"/{pid}" if plan.ids else ""
            if cfg:
                if "architecture" not in cfg:
                    cfg = {"architecture": target.architecture, "os": target.os, **cfg}
                metadata["containerimage.config" + suffix] = json.dumps(cfg).encode()
            if cfg_bytes:
                metadata["containerimage.base.config" + suffix] = cfg_bytes
            if plan.ids:
                refs[pid] = top or ""
            else:
                ref = top
        if plan.ids:
            metadata["refs.platforms"] = json.dumps(
                {
                    "Platforms": [
                        {"ID": p, "Platform": Platform.parse(p).to_json()} for p in plan.ids
                    ]
                }
            ).encode()
        src = Source(ref=ref, refs=refs, metadata=metadata)
        for inst in instances:
            writer = _step(progress, inst.name)
            with status(writer, inst.name):
                got = inst.export(src, progress=writer)
            response.update(got)
            for n in got.get("image.name", "").split(","):
                if n and n not in names:
                    names.append(n)
    return ExportResult(
        digest=response.get("containerimage.digest", ""),
        metadata=decode_response(response),
        names=tuple(names),
    )
