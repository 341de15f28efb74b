"""Image references, parsed and normalised like Docker's ``reference.ParseNormalizedNamed``.

Grammar (distribution ``reference/reference.go``)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [domain "/"] path-component ["/" path-component]*
    domain      := host [":" port]
    host        := domain-component ["." domain-component]* | "[" ipv6 "]"
    path-comp   := [a-z0-9]+ ((\\.|_|__|-+) [a-z0-9]+)*
    tag         := [\\w][\\w.-]{0,127}

Normalisation: a first component without ``.`` or ``:`` that is not ``localhost`` (and is
lower-case) is not a domain, so ``ubuntu`` is ``docker.io/library/ubuntu``; ``index.docker.io`` is
``docker.io``; a reference with neither tag nor digest gets ``:latest`` (:meth:`Reference.parse`
with ``default_tag``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument
from .digest import Digest

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "Reference",
    "split_docker_domain",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_ANCHORED_ID = re.compile(r"^[a-f0-9]{64}$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")


def _bad(value: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"reference {value!r}: invalid reference format: {what}")


def split_docker_domain(name: str) -> tuple[str, str]:
    """``(domain, remainder)`` with Docker's defaults applied (``docker.io``, ``library/``)."""
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A normalised reference: ``registry/repository[:tag][@digest]``.

    ``registry`` is the domain as written (``docker.io``, ``localhost:5000``); the API host for
    ``docker.io`` is ``registry-1.docker.io`` (:attr:`api_host`).

    Example::

        ref = pallet.Reference.parse("alpine")
        str(ref)         # 'docker.io/library/alpine:latest'
        ref.registry     # 'docker.io'
        ref.familiar()   # 'alpine:latest'
    """

    registry: str
    repository: str
    tag: str = ""
    digest: Digest | None = None

    @classmethod
    def parse(cls, value: str, *, default_tag: bool = True) -> Reference:
        """Parse and normalise ``value``.

        Args:
            value: ``ubuntu``, ``ubuntu:22.04``, ``localhost:5000/a/b@sha256:...``, ...
            default_tag: add ``:latest`` when there is neither tag nor digest.

        Raises:
            InvalidArgument: the value does not follow the grammar; the message names it and
                says why (``repository name must be lowercase``, ``invalid tag format`` ...).
        """
        if not isinstance(value, str) or value == "":
            raise _bad(str(value), "repository name must have at least one component")
        if _ANCHORED_ID.match(value):
            raise InvalidArgument(
                f"reference {value!r}: invalid repository name, "
                "cannot specify 64-byte hexadecimal strings"
            )
        # split off the digest and tag before the domain, as ParseNormalizedNamed does
        name_part = value
        dgst = ""
        if "@" in name_part:
            name_part, _, dgst = name_part.partition("@")
        tag = ""
        slash = name_part.rfind("/")
        colon = name_part.rfind(":")
        if colon > slash:
            name_part, tag = name_part[:colon], name_part[colon + 1 :]
        domain, rest = split_docker_domain(name_part)
        if rest.lower() != rest:
            raise _bad(value, f"repository name ({rest}) must be lowercase")
        full = f"{domain}/{rest}"
        if tag:
            full += ":" + tag
        if dgst or "@" in value:
            full += "@" + dgst
        m = _REFERENCE.match(full)
        if m is None:
            if tag and not _TAG_RE.match(tag):
                raise _bad(value, "invalid tag format")
            if "@" in value and not re.match(rf"^{_DIGEST}$", dgst):
                raise _bad(value, "invalid digest format")
            if not _DOMAIN_RE.match(domain):
                raise _bad(value, f"invalid registry host {domain!r}")
            if _REFERENCE.match(full.lower()):
                raise _bad(value, "repository name must be lowercase")
            raise _bad(value, "repository name contains invalid characters")
        name = m.group(1)
        if len(name) > NAME_TOTAL_MAX:
            raise _bad(value, f"repository name must not be more than {NAME_TOTAL_MAX} characters")
        digest: Digest | None = None
        if m.group(3):
            try:
                digest = Digest.parse(m.group(3))
            except InvalidArgument as exc:
                raise _bad(value, f"invalid digest format ({exc})") from None
        tag = m.group(2) or ""
        if default_tag and not tag and digest is None:
            tag = DEFAULT_TAG
        return cls(registry=domain, repository=rest, tag=tag, digest=digest)

    # -- views --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``registry/repository`` (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves ``/v2/`` (``registry-1.docker.io`` for Docker Hub)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_DOMAIN else self.registry

    @property
    def hostname(self) -> str:
        """The registry host without its port (containerd's distribution-source label key)."""
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def object(self) -> str:
        """What ``/manifests/<object>`` addresses: the digest if set, else the tag."""
        return str(self.digest) if self.digest else self.tag

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"tag {tag!r}: invalid tag format")
        return Reference(registry=self.registry, repository=self.repository, tag=tag)

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(
            registry=self.registry, repository=self.repository, tag=self.tag, digest=digest
        )

    def familiar(self) -> str:
        """Docker's short form: ``ubuntu:latest`` for ``docker.io/library/ubuntu:latest``."""
        name = self.name
        if self.registry == DEFAULT_DOMAIN:
            name = self.repository.removeprefix(OFFICIAL_PREFIX)
        return name + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        if self.digest:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()
