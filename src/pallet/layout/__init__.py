"""OCI image layouts and Docker archives: write them, import them, unpack images.

* :mod:`.write`: :func:`plan_layout` checks and encodes, :func:`write_archive` streams a tarball
  to any sink (standard output included) straight from the content store,
  :func:`write_directory` writes a layout directory.
* :mod:`.load`: :func:`load_archive` and :func:`load_directory` import, verifying every blob.
* :mod:`.unpack`: :func:`unpack` writes an image's root filesystem into a directory through the
  root-confined layer applier.

How the ``oci`` and ``docker`` exporters (spec/exporter.md §7) use the writer, after their commit
produced ``root`` (the manifest or index descriptor) and the normalised ``names``::

    from pallet.layout import ArchiveImage, Format, plan_layout, write_archive, write_directory

    ann = {**root.annotations}
    ann.setdefault("org.opencontainers.image.created", created)   # RFC 3339, seconds
    images = [ArchiveImage(target=replace(root, annotations=ann), names=names)]
    plan = plan_layout(content, images, format=Format.DOCKER if docker else Format.OCI)
    if tar:                                   # dest=FILE or dest=- (sys.stdout.buffer)
        write_archive(sink, content, plan)
    else:                                     # tar=false: an OCI layout directory
        write_directory(dest, content, plan)

``plan_layout`` raises before anything is written (missing blob, an index root for Docker:
``docker exporter does not currently support exporting manifest lists``), so the response map
can be sent, then the stream written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# eager: the function `unpack` shares its name with the submodule, and importing a submodule
# rebinds the package attribute of that name; importing it here first keeps the function
from .unpack import UnpackResult, image_layers, unpack

if TYPE_CHECKING:
    from .load import LoadedImage, LoadResult, load_archive, load_directory
    from .write import (
        ANNOTATION_IMAGE_NAME,
        ANNOTATION_REF_NAME,
        DOCKER_MANIFEST_LISTS_UNSUPPORTED,
        ArchiveImage,
        Format,
        LayoutPlan,
        plan_layout,
        save,
        write_archive,
        write_directory,
    )

# Submodules load on first use (PEP 562), so `pallet unpack` does not import the archive
# reader and `pallet save` does not import the applier.
_LOAD = frozenset(("LoadedImage", "LoadResult", "load_archive", "load_directory"))


def __getattr__(name: str) -> Any:
    # every other name in __all__ that is not bound yet is one of .write's
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(".load" if name in _LOAD else ".write", __name__)
    value = getattr(mod, name)
    globals()[name] = value
    return value


__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "DOCKER_MANIFEST_LISTS_UNSUPPORTED",
    "ArchiveImage",
    "Format",
    "LayoutPlan",
    "LoadResult",
    "LoadedImage",
    "UnpackResult",
    "image_layers",
    "load_archive",
    "load_directory",
    "plan_layout",
    "save",
    "unpack",
    "write_archive",
    "write_directory",
]
