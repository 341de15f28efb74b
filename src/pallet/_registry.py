"""The registry calls of :class:`pallet.Store`: push, pull, login, logout.

Each is what the command of the same name does: the store's image goes to a registry with
:func:`pallet.remote.push`; a pulled image is fetched under a temporary lease (so garbage
collection cannot take its blobs before it has a name) and then named as the reference was
written, normalised. Credentials live where ``docker login`` keeps them (the Docker config, or
its credential helper); a password never appears in a message.

The registry client (and with it the HTTP stack) is imported by the call that needs it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._lookup import find_image, image_of, parse_platform
from .errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from ._backend import Backend
    from ._types import Image
    from .images import ImageStore
    from .oci.descriptor import Descriptor, Platform
    from .progress import Progress
    from .remote import Options

__all__ = ["login", "logout", "name_image", "pull", "push", "remote_options"]

StrPath = str | os.PathLike[str]


def remote_options(
    *, jobs: int, insecure: bool, hosts: list[str], ca_file: StrPath | None
) -> Options:
    """The registry client's options for a call on ``hosts``."""
    from .remote import Options

    if jobs < 1:
        raise InvalidArgument(f"jobs {jobs}: must be at least 1")
    return Options(
        jobs=jobs,
        insecure=frozenset(hosts) if insecure else frozenset(),
        ca_file=None if ca_file is None else os.fspath(ca_file),
    )


def name_image(images: ImageStore, name: str, target: Descriptor) -> None:
    """Point ``name`` at ``target`` (update, else create), as the exporter names images."""
    from .images import Image

    try:
        images.update(Image(name=name, target=target), ["target"])
    except NotFound:
        images.create(Image(name=name, target=target))


def push(
    backend: Backend,
    ref: str,
    dest: str | None,
    *,
    by_digest: bool,
    insecure: bool,
    ca_file: StrPath | None,
    jobs: int,
    progress: Callable[[Progress], None] | None,
) -> str:
    from .oci.reference import Reference
    from .remote import push as push_image

    target = Reference.parse(dest or ref, default_tag=not by_digest)
    if dest is None and by_digest:  # the image's own name: push its repository, by digest
        target = dataclasses.replace(target, tag="")
    options = remote_options(jobs=jobs, insecure=insecure, hosts=[target.registry], ca_file=ca_file)
    img = find_image(backend.images, ref)
    results = push_image(
        backend.content,
        img.target,
        str(target),
        by_digest=by_digest,
        options=options,
        on_progress=progress,
    )
    return str(results[0].descriptor.digest)


def pull(
    backend: Backend,
    ref: str,
    *,
    platform: str | Platform | None,
    insecure: bool,
    ca_file: StrPath | None,
    jobs: int,
    progress: Callable[[Progress], None] | None,
) -> Image:
    from .leases import temporary
    from .oci.reference import Reference
    from .remote import pull as pull_image

    r = Reference.parse(ref)
    options = remote_options(jobs=jobs, insecure=insecure, hosts=[r.registry], ca_file=ca_file)
    want = parse_platform(platform)
    name = str(r)
    with temporary(backend.leases) as lease:
        root = pull_image(
            name,
            backend.content,
            platform=want,
            lease=lease,
            options=options,
            on_progress=progress,
        )
        name_image(backend.images, name, root)
    return image_of(backend.content, backend.images.get(name))


def login(
    registry: str, username: str, password: str, *, insecure: bool, ca_file: StrPath | None
) -> str:
    from .remote import Options
    from .remote import login as remote_login
    from .remote.credentials import normalize_host

    if not registry:
        raise InvalidArgument("registry: must not be empty")
    if not username:
        raise InvalidArgument("username: must not be empty")
    if not password:
        raise InvalidArgument("password: must not be empty")
    hosts = {registry, normalize_host(registry)} if insecure else set()
    ca = None if ca_file is None else os.fspath(ca_file)
    options = Options(ca_file=ca, insecure=frozenset(hosts))
    return str(remote_login(registry, username, password, options=options))


def logout(registry: str) -> bool:
    from .remote import logout as remote_logout

    if not registry:
        raise InvalidArgument("registry: must not be empty")
    return remote_logout(registry)
