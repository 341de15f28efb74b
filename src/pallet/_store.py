"""``pallet.Store``: the library's front door.

A :class:`Store` is the embedded content-addressed store at a root directory, or a containerd
daemon (:meth:`Store.containerd`). Every call the command line makes is a method here; the
methods hand their work to one private module per area:

* :mod:`pallet._export`: ``export`` (inputs, base images, config merging, outputs);
* :mod:`pallet._registry`: ``push``, ``pull``, ``login``, ``logout``;
* :mod:`pallet._archive`: ``save``, ``load``, ``unpack``;
* :mod:`pallet._manage`: images, tags, content, leases, ``gc``, ``fsck``.

Those modules, and what they import (the HTTP stack, the codecs, gRPC), load on the first call
that needs them, so ``import pallet`` stays light.

Thread and process safety: one :class:`Store` may be used from several threads at once, and
several processes may open the same root: the embedded store guards every ingest with a lock
file, publishes blobs under a shared GC lock and keeps its records in SQLite (WAL).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import BinaryIO, Literal

    from ._backend import Backend
    from ._export import OutputSpec, PlatformSpec
    from ._types import Config, ExportResult, Layer, RootFS
    from .progress import Progress

__all__ = ["Store"]

#: a path, as the standard library takes them
StrPath = str | os.PathLike[str]


class Store:
    """An image store: the embedded one at ``root``, or containerd (:meth:`containerd`).

    Example::

        import pallet

        with pallet.Store(root="/tmp/pallet-doc") as store:
            for image in store.images():
                print(image.name, image.digest)

    Args:
        root: the store's directory; default ``$PALLET_ROOT``, else
            ``$XDG_DATA_HOME/pallet``, else ``~/.local/share/pallet`` (as the command line).
    """

    def __init__(self, root: StrPath | None = None) -> None:
        from ._backend import open_embedded

        self._backend: Backend = open_embedded(root)

    @classmethod
    def containerd(
        cls,
        address: str | None = None,
        namespace: str | None = None,
        *,
        snapshotter: str | None = None,
        root: StrPath | None = None,
    ) -> Store:
        """A store on a containerd daemon.

        Example::

            with pallet.Store.containerd(namespace="default") as store:
                store.pull("docker.io/library/alpine:3.20")

        Args:
            address: the socket; default ``$PALLET_CONTAINERD_ADDRESS``,
                ``$CONTAINERD_ADDRESS``, ``/run/containerd/containerd.sock``.
            namespace: default ``$PALLET_CONTAINERD_NAMESPACE``, ``$CONTAINERD_NAMESPACE``,
                ``default``.
            snapshotter: the snapshotter ``unpack=True`` fills; default
                ``$CONTAINERD_SNAPSHOTTER``, else ``overlayfs``.
            root: the embedded store that records an export's input directories.
        """
        from ._backend import open_containerd

        self = cls.__new__(cls)
        self._backend = open_containerd(address, namespace, snapshotter=snapshotter, root=root)
        return self

    @property
    def kind(self) -> str:
        """``"embedded"`` or ``"containerd"``."""
        return self._backend.kind

    @property
    def where(self) -> str:
        """The root directory, or the containerd socket and namespace."""
        return self._backend.where

    def close(self) -> None:
        """Release the store's connections; the store is not usable afterwards."""
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pallet.Store {self.kind} {self.where}>"

    # --- export: pallet._export -------------------------------------------------------------

    def export(
        self,
        inputs: Sequence[Layer | RootFS] = (),
        *,
        base: str | None = None,
        config: Config | None = None,
        platform: PlatformSpec | None = None,
        names: str | Sequence[str] = (),
        output: Literal["image", "oci", "docker"] | None = None,
        dest: StrPath | BinaryIO | None = None,
        tar: bool | None = None,
        push: bool | None = None,
        push_by_digest: bool | None = None,
        insecure: bool | None = None,
        store: bool | None = None,
        unpack: bool | None = None,
        compression: Literal["uncompressed", "gzip", "zstd"] | None = None,
        compression_level: int | None = None,
        force_compression: bool | None = None,
        oci_mediatypes: bool | None = None,
        oci_artifact: bool | None = None,
        rewrite_timestamp: bool | None = None,
        annotations: Mapping[str, str] | None = None,
        dangling_name_prefix: str | None = None,
        dangling_name_empty_only: bool | None = None,
        name_canonical: bool | None = None,
        attestation_inline: bool | None = None,
        prefer_nondist_layers: bool | None = None,
        options: Mapping[str, str] | None = None,
        outputs: Sequence[OutputSpec] | None = None,
        source_date_epoch: int | None = None,
        base_insecure: bool = False,
        ca_file: StrPath | None = None,
        progress: Callable[[Progress], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> ExportResult:
        """Export directories as an image: BuildKit's image exporter, without a build.

        Example::

            result = store.export(
                [pallet.Layer("dist", dest="/app")],
                base="docker.io/library/python:3.12-slim",
                config=pallet.Config(cmd=["python", "-m", "app"], env={"PYTHONUNBUFFERED": "1"}),
                names=["registry.example.com/app:1"],
                push=True,
                compression="zstd",
            )
            print(result.digest)

        Each platform's image is ``base``'s layers, then one layer per input, bottom first. A
        :class:`Layer` is the whole tree of its directory placed at ``dest``; a
        :class:`RootFS` is a complete filesystem diffed against what is below it (files it
        lacks become whiteouts), so every RootFS comes before the Layers. The directories are
        read in place, never copied; a file that changes while it is read fails the export.

        What can be checked without I/O is checked before anything is written, and a failed
        export leaves no image, lease or blob behind.

        Args:
            inputs: the layers of every platform (a single :class:`Layer` or :class:`RootFS`
                is taken as a list of one).
            base: an image to start from: in this store (as named, or in its normalised form:
                ``alpine`` is ``docker.io/library/alpine:latest``), else pulled from its
                registry. Its layer blobs are reused as they are, and unpacked only when a
                RootFS must be diffed against them. Pulled for each platform of the export.
            config: the image config: ``Config.raw`` (a whole config) or the base's, with the
                fields of ``config`` set on top.
            platform: ``None``: one image for this machine's platform. ``"linux/arm64"`` (or a
                :class:`Platform`): one image for that platform. A list of platforms, or
                ``"linux/amd64,linux/arm64"``: an index, each platform's image made of
                ``inputs``. A mapping platform -> inputs: an index, each platform's image made
                of ``inputs`` then its own (``{"linux/amd64": [pallet.RootFS("amd64")], …}``).
                A list or a mapping of one platform gives an index of one, as BuildKit does
                for a multi-platform build.
            names: the image's names: it is stored under them and pushed to them.
            output: ``"image"`` (default): into this store, named, unpacked and pushed as
                asked. ``"oci"`` / ``"docker"``: an OCI layout or Docker archive tarball,
                written to ``dest``.
            dest: where a tarball goes: a path (written through a temporary file, so nothing is
                left on failure), a binary file object, or ``"-"`` for standard output; with
                ``tar=False`` a directory that becomes an OCI layout.
            tar: False writes an OCI layout directory at ``dest`` instead of a tarball.
            push: push the image to its names' registries (default False).
            push_by_digest: push without tags, by digest only (default False).
            insecure: push over plain HTTP or unverified TLS (``registry.insecure``; default
                False; loopback registries use plain HTTP anyway).
            store: keep the image in the store (default True); False with ``push=True`` only
                pushes, and then a registry base's layers are never downloaded.
            unpack: unpack the image into the store's snapshotter (containerd: for
                ``ctr run``; default False).
            compression: the layers' compression (default ``"gzip"``). Layers that already
                have a blob are reused as they are unless ``force_compression``.
            compression_level: gzip 0-9, zstd 0-22 (default: the compressor's).
            force_compression: recompress reused layers to ``compression`` (default False).
            oci_mediatypes: OCI media types (default True); False gives Docker's.
            oci_artifact: default ``oci_mediatypes``.
            rewrite_timestamp: clamp every file time later than the epoch to it, so that
                checkouts made at different times give the same layers (default False).
            annotations: OCI annotations in buildx's ``--annotation`` syntax:
                ``{"org.opencontainers.image.source": "…"}`` annotates each manifest;
                ``"index:KEY"``, ``"manifest-descriptor:KEY"``, ``"index-descriptor:KEY"``
                and ``"manifest[linux/arm64]:KEY"`` choose where.
            dangling_name_prefix: name an image that has no name ``<prefix>@<digest>``.
            dangling_name_empty_only: only when it has no other name (default False).
            name_canonical: also name it ``<name>@<digest>`` (default False).
            attestation_inline: BuildKit's; pallet makes no attestations (default True).
            prefer_nondist_layers: BuildKit's ``prefer-nondist-layers`` (default False).
            options: more exporter attrs, as ``-o`` spells them
                (``{"unsafe-internal-store-allow-incomplete": "true"}``, metadata keys such as
                ``containerimage.config``); a key also given as a keyword is an error.
            outputs: several outputs of one export, instead of the output keywords above: each
                ``-o`` text (``"type=oci,dest=app.tar"``) or its attrs as a mapping
                (``{"type": "oci", "dest": app_file}``; ``dest`` may be a path or a binary file
                object). The same snapshots feed every output; ``result`` holds the responses
                merged, the last output's digest.
            source_date_epoch: the export's epoch, in seconds: the config, history, manifest,
                index and image record times are fixed to it, so the same trees give the same
                digest anywhere. Default: ``$SOURCE_DATE_EPOCH``, as reproducible-builds tools
                do. An output's ``source-date-epoch`` attr overrides it (``""`` disables it).
            base_insecure: pull ``base`` over plain HTTP or unverified TLS.
            ca_file: a PEM bundle of extra CAs trusted for registries (pull and push).
            progress: called with each :class:`Progress` event, from several threads. Each
                event's ``vertex`` names its step (``resolving <base>``, ``exporting to
                image``, …); the event whose ``id`` is its ``vertex`` reports the step itself.
            on_warning: called with BuildKit's warnings and the entries the differ skipped
                (default: the ``pallet`` logger).

        Returns:
            The :class:`ExportResult`: ``digest`` (the manifest's, or the index's),
            ``metadata`` (buildx's ``--metadata-file`` content) and ``names``.

        Raises:
            InvalidArgument: a bad input, platform, config field or option, naming it (the
                exporter's options with BuildKit's texts).
            NotFound: the base is not in the store, nor in its registry.
            Error: anything else that fails (a registry, a file changed while read, ...).
        """
        from ._export import OutputKeywords, export

        keywords = OutputKeywords(
            output=output,
            names=names,
            dest=dest,
            tar=tar,
            flags={
                "push": push,
                "push_by_digest": push_by_digest,
                "insecure": insecure,
                "store": store,
                "unpack": unpack,
                "force_compression": force_compression,
                "oci_mediatypes": oci_mediatypes,
                "oci_artifact": oci_artifact,
                "rewrite_timestamp": rewrite_timestamp,
                "dangling_name_empty_only": dangling_name_empty_only,
                "name_canonical": name_canonical,
                "attestation_inline": attestation_inline,
                "prefer_nondist_layers": prefer_nondist_layers,
            },
            compression=compression,
            compression_level=compression_level,
            annotations=annotations,
            dangling_name_prefix=dangling_name_prefix,
            options=options,
        )
        return export(
            self._backend,
            inputs,
            platform=platform,
            base=base,
            config=config,
            keywords=keywords,
            outputs=outputs,
            source_date_epoch=source_date_epoch,
            base_insecure=base_insecure,
            ca_file=ca_file,
            progress=progress,
            on_warning=on_warning,
        )

    # --- registries: pallet._registry -----------------------------------------------------------
    # (methods of this area go here)

    # --- archives: pallet._archive --------------------------------------------------------------
    # (methods of this area go here)

    # --- images, content, leases, gc, fsck: pallet._manage --------------------------------------
    # (methods of this area go here)
