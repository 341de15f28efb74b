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
from typing import TYPE_CHECKING

from ._views import ContentStore, LeaseManager

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType
    from typing import IO, BinaryIO, Literal

    from ._backend import Backend
    from ._export import OutputSpec, PlatformSpec
    from ._types import (
        ArchiveImage,
        Config,
        ContainerdVersion,
        CopyResult,
        ExportResult,
        FsckReport,
        GCStats,
        Image,
        Layer,
        RootFS,
        UnpackResult,
    )
    from .oci.descriptor import Descriptor, Platform
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

    A store may be shared by several threads, and several processes (this library or the
    ``pallet`` command) may work on the same root at once.

    Args:
        root: the store's directory; default ``$PALLET_ROOT``, else
            ``$XDG_DATA_HOME/pallet``, else ``~/.local/share/pallet`` (as the command line).
    """

    def __init__(self, root: StrPath | None = None) -> None:
        from ._backend import open_embedded

        self._b: Backend = open_embedded(root)

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
        self._b = open_containerd(address, namespace, snapshotter=snapshotter, root=root)
        return self

    @property
    def _backend(self) -> Backend:
        """The backend; FailedPrecondition once the store is closed."""
        return self._b.live()

    @property
    def kind(self) -> str:
        """``"embedded"`` or ``"containerd"``.

        Example::

            pallet.Store(root="/tmp/pallet-doc").kind  # 'embedded'
        """
        return self._b.kind

    @property
    def where(self) -> str:
        """The root directory, or the containerd socket and namespace.

        Example::

            print(store.where)  # /tmp/pallet-doc
        """
        return self._b.where

    def close(self) -> None:
        """Release the store's connections; the store is not usable afterwards.

        Example::

            store = pallet.Store()
            try:
                store.images()
            finally:
                store.close()  # or: with pallet.Store() as store: ...

        Any later call raises :class:`~pallet.FailedPrecondition`; closing twice is fine.
        """
        self._b.close()

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
    def push(
        self,
        ref: str,
        dest: str | None = None,
        *,
        by_digest: bool = False,
        insecure: bool = False,
        ca_file: StrPath | None = None,
        jobs: int = 4,
        progress: Callable[[Progress], None] | None = None,
    ) -> str:
        """Push the image named ``ref`` to its registry, or to ``dest``.

        Blobs the registry has are skipped, blobs of the same registry are mounted, the rest are
        uploaded ``jobs`` at a time; manifests go after their children. Credentials come from
        the Docker config (:meth:`login`).

        Example::

            digest = store.push("app:1", "registry.example.com/team/app:1")

        Args:
            ref: the image's name in the store (``app:1``, or normalised,
                ``docker.io/library/app:1``).
            dest: the reference to push to; default ``ref``. Without a tag: ``:latest``.
            by_digest: push without a tag (``dest`` must not have one).
            insecure: allow plain HTTP and unverified TLS for ``dest``'s registry.
            ca_file: a PEM bundle of extra trusted CA certificates.
            jobs: blobs in parallel.
            progress: receives a :class:`pallet.Progress` per step and blob, from any thread.

        Returns:
            The digest of the pushed root (manifest or index), ``sha256:…``.

        Raises:
            NotFound: no image ``ref`` in the store, or a blob of it is missing.
            InvalidArgument: a malformed reference, ``jobs`` below 1, a tagged ``dest`` with
                ``by_digest``.
            Error: the registry refused (``Unauthorized``, ``Unavailable`` after retries…).
        """
        from . import _registry

        return _registry.push(
            self._backend,
            ref,
            dest,
            by_digest=by_digest,
            insecure=insecure,
            ca_file=ca_file,
            jobs=jobs,
            progress=progress,
        )

    def pull(
        self,
        ref: str,
        *,
        platform: str | Platform | None = None,
        insecure: bool = False,
        ca_file: StrPath | None = None,
        jobs: int = 4,
        progress: Callable[[Progress], None] | None = None,
    ) -> Image:
        """Pull ``ref`` into the store and name it (normalised: ``alpine:3.20`` becomes
        ``docker.io/library/alpine:3.20``). From an index, the index and one platform's
        manifest, config and layers are fetched.

        Example::

            image = store.pull("docker.io/library/alpine:3.20", platform="linux/arm64")
            print(image.name, image.digest)

        Args:
            ref: ``host/repo:tag`` or ``host/repo@sha256:…``.
            platform: the manifest to fetch from an index (``os/arch[/variant]``); default
                this machine's.
            insecure: allow plain HTTP and unverified TLS for the registry.
            ca_file: a PEM bundle of extra trusted CA certificates.
            jobs: blobs in parallel.
            progress: receives a :class:`pallet.Progress` per step and blob, from any thread.

        Returns:
            The image as the store now names it; its ``digest`` is the root's (the index's,
            for a multi-platform image).

        Raises:
            InvalidArgument: a malformed reference or platform, ``jobs`` below 1.
            NotFound: the registry has no such reference, or the index no such platform.
            DigestMismatch: the registry sent other bytes than the digest.
        """
        from . import _registry

        return _registry.pull(
            self._backend,
            ref,
            platform=platform,
            insecure=insecure,
            ca_file=ca_file,
            jobs=jobs,
            progress=progress,
        )

    @staticmethod
    def login(
        registry: str,
        username: str,
        password: str,
        *,
        insecure: bool = False,
        ca_file: StrPath | None = None,
    ) -> str:
        """Check ``username`` and ``password`` with ``registry``, then store them where
        ``docker login`` does (``$DOCKER_CONFIG/config.json``, or its credential helper).
        Nothing is stored when the registry refuses; the password is never in a message.
        Credentials are the user's, not a store's: call it on the class or on any store.

        Example::

            pallet.Store.login("registry.example.com", "ci", os.environ["REGISTRY_TOKEN"])

        Args:
            registry: ``host[:port]`` (``docker.io`` is Docker Hub; a URL is accepted).
            insecure: allow plain HTTP and unverified TLS for the registry.
            ca_file: a PEM bundle of extra trusted CA certificates.

        Returns:
            The path of the configuration file written.

        Raises:
            InvalidArgument: an empty registry, username or password.
            Error: the registry refused the credentials (``Unauthorized``) or is unreachable.
        """
        from . import _registry

        return _registry.login(registry, username, password, insecure=insecure, ca_file=ca_file)

    @staticmethod
    def logout(registry: str) -> bool:
        """Remove the stored credentials for ``registry``.

        Example::

            pallet.Store.logout("registry.example.com")

        Returns:
            True if there were credentials to remove.
        """
        from . import _registry

        return _registry.logout(registry)

    # --- archives: pallet._archive --------------------------------------------------------------
    def save(
        self,
        names: str | Sequence[str],
        dest: StrPath | IO[bytes],
        *,
        format: str = "oci",
        platform: str | Platform | None = None,
    ) -> list[ArchiveImage]:
        """Write images as a tarball that ``docker load``, ``podman load``, ``ctr images
        import``, skopeo (``oci-archive:``) and umoci read.

        Everything is checked before the first byte is written. A path is written beside
        itself and renamed into place; a file object (``sys.stdout.buffer``, a socket, a
        ``BytesIO``) gets the stream and is flushed, not closed.

        Example::

            store.save(["registry.example.com/app:1"], "app.tar", format="docker")

        Args:
            names: the images' names in the store; each goes into the archive by its name.
            dest: a path, or a binary file object open for writing.
            format: ``"oci"`` (an OCI image layout) or ``"docker"`` (also ``manifest.json``,
                for ``docker load``; one platform only).
            platform: write only this platform's manifest of an index (``os/arch[/variant]``).

        Returns:
            The images written, in ``index.json`` order.

        Raises:
            NotFound: an image or one of its blobs is not in the store, or no manifest
                matches ``platform``.
            InvalidArgument: no name, a name that is not a reference, an unknown format.
            Unsupported: a multi-platform image in a Docker archive without ``platform``.
        """
        from . import _archive

        return _archive.save(self._backend, names, dest, format=format, platform=platform)

    def load(self, src: StrPath | IO[bytes], *, tag: str | None = None) -> list[ArchiveImage]:
        """Import an OCI layout (a tarball or a directory) or a Docker archive, verifying every
        blob; nothing is kept unless everything verified. Tarballs may be gzip or zstd
        compressed.

        Example::

            for image in store.load("app.tar"):
                print(image.digest, *image.names)

        Args:
            src: a path (a tarball or an OCI layout directory), or a binary file object.
            tag: a name for the archive's image (which must hold one), besides its own.

        Returns:
            The images imported, each with the names the store now has for it.

        Raises:
            NotFound: no such path.
            InvalidArgument: a malformed or truncated archive, an image without a name.
            DigestMismatch: a blob whose bytes do not match its digest.
        """
        from . import _archive

        return _archive.load(self._backend, src, tag=tag)

    def unpack(
        self,
        ref: str,
        dest: StrPath,
        *,
        platform: str | Platform | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> UnpackResult:
        """Write the root filesystem of image ``ref`` into the directory ``dest``, which must
        not exist or be empty. Nothing is written outside ``dest``, whatever the layers hold;
        a ``dest`` created here is removed again if unpacking fails.

        Example::

            result = store.unpack("registry.example.com/app:1", "rootfs/")
            print(result.digest, result.diff_ids)

        Args:
            ref: the image's name in the store.
            dest: the directory to fill.
            platform: the manifest of an index to unpack (``os/arch[/variant]``); default this
                machine's.
            on_warning: called with each thing that could not be reproduced exactly
                (ownership when not root, device nodes…); they are in the result too.

        Raises:
            NotFound: no image ``ref``, no manifest for ``platform``, a blob missing.
            InvalidArgument: ``dest`` not empty or a symbolic link, a layer that cannot be
                applied.
            DigestMismatch: a layer that does not hash to its diff ID.
        """
        from . import _archive

        return _archive.unpack(self._backend, ref, dest, platform=platform, on_warning=on_warning)

    # --- images, content, leases, gc, fsck: pallet._manage --------------------------------------
    def images(self, filters: Sequence[str] | None = ()) -> list[Image]:
        """The images matching every filter (containerd's syntax: ``name~=^docker.io/``,
        ``labels."k"==v``, ``target.mediatype==…``), by name.

        :attr:`Image.size` is the size of everything the image references (for an index, all
        platforms), as ``docker images`` shows; :attr:`Image.root_size` the manifest's or
        index's own.

        Example::

            for image in store.images(["name~=^registry.example.com/"]):
                print(image.name, image.digest, image.size)

        Raises:
            InvalidArgument: a filter does not parse.
        """
        from . import _manage

        return _manage.images(self._backend, filters)

    def image(self, ref: str) -> Image:
        """The image named ``ref``, as written or normalised (``alpine:3.20`` finds
        ``docker.io/library/alpine:3.20``).

        Example::

            image = store.image("registry.example.com/app:1")
            print(image.digest, image.media_type)

        Raises:
            NotFound: no image has that name.
        """
        from . import _manage

        return _manage.image(self._backend, ref)

    def graph(self, ref: str | Image) -> list[Descriptor]:
        """Every descriptor the image references: the root first, parents before children,
        each digest once (what ``pallet images inspect`` prints as ``graph``).

        Example::

            layers = [d for d in store.graph("app:1") if "layer" in d.media_type]

        Raises:
            NotFound: the image, or a manifest or index under it, is not in the store.
        """
        from . import _manage

        return _manage.graph(self._backend, ref)

    def tag(self, src: str | Image, dst: str) -> Image:
        """Give ``src``'s target the name ``dst`` too (moving ``dst`` if it named another
        image); returns the ``dst`` image.

        Example::

            store.tag("registry.example.com/app:1", "registry.example.com/app:latest")

        Raises:
            NotFound: no image is named ``src``.
            InvalidArgument: ``dst`` is not a valid name.
        """
        from . import _manage

        return _manage.tag(self._backend, src, dst)

    def remove(self, *names: str | Image, gc: bool = True) -> None:
        """Delete images, in order. With ``gc`` the last delete collects garbage before it
        returns (the embedded store runs its collector; containerd's is awaited), so the
        content only those images held is gone.

        Example::

            store.remove("registry.example.com/app:1", "registry.example.com/app:latest")

        Raises:
            NotFound: no image has a name (those before it are deleted).
        """
        from . import _manage

        _manage.remove(self._backend, names, gc=gc)

    def gc(self, *, dry_run: bool = False) -> GCStats:
        """Collect garbage: remove the blobs, snapshots and stale ingests that no image, lease
        or label holds, and the expired leases. Safe while other threads and processes export,
        pull and load into the store.

        Example::

            stats = store.gc()
            print(f"{len(stats.blobs)} blobs, {stats.bytes} bytes freed")

        Raises:
            Unsupported: a containerd store (the daemon collects its own garbage).
        """
        from . import _manage

        return _manage.gc(self._backend, dry_run=dry_run)

    def fsck(self, *, repair: bool = False) -> FsckReport:
        """Verify every blob against its digest and every image's graph; with ``repair``,
        remove what cannot be trusted (never a valid blob).

        Example::

            report = store.fsck()
            if not report.ok:
                print("\\n".join(map(str, report.problems)))

        Raises:
            Unsupported: a containerd store.
        """
        from . import _manage

        return _manage.fsck(self._backend, repair=repair)

    @property
    def content(self) -> ContentStore:
        """The store's blobs and ingests (``pallet content``).

        Example::

            dgst = store.content.ingest("note", b"hello")
            store.content.read(dgst)   # b'hello'
        """
        return ContentStore(self._backend)

    @property
    def leases(self) -> LeaseManager:
        """The store's leases (``pallet leases``).

        Example::

            with store.leases.temporary() as lease:
                store.content.ingest("upload", data, lease=lease)
        """
        return LeaseManager(self._backend)

    def version(self) -> ContainerdVersion:
        """The containerd daemon's version (a health check: the daemon answered).

        Example::

            with pallet.Store.containerd() as ctr:
                print(ctr.version().version)

        Raises:
            Unsupported: the embedded store.
            Unavailable: the daemon stopped answering.
        """
        from . import _manage

        return _manage.version(self._backend)

    def copy(
        self,
        ref: str | Image,
        to: Store,
        *,
        names: Sequence[str] = (),
        unpack: bool = False,
        snapshotter: str | None = None,
        platform: str | Platform | None = None,
    ) -> CopyResult:
        """Copy an image into the containerd store ``to``: children before parents, with the
        labels containerd's collector follows, under a temporary lease; then name it (``names``,
        default its own name) and, with ``unpack``, unpack ``platform`` (default this
        machine's) into ``snapshotter`` (default ``to``'s).

        Example::

            with pallet.Store() as store, pallet.Store.containerd(namespace="ci") as ctr:
                store.copy("app:1", ctr, names=["registry.example.com/app:1"], unpack=True)

        Raises:
            NotFound: no image has that name, or a blob of its graph is missing.
            Unsupported: ``to`` is not a containerd store.
        """
        from . import _manage
        from .errors import InvalidArgument

        if not isinstance(to, Store):
            raise InvalidArgument(f"to {to!r}: want a pallet.Store")
        return _manage.copy(
            self._backend,
            ref,
            to._backend,
            names=names,
            unpack=unpack,
            snapshotter=snapshotter,
            platform=platform,
        )
