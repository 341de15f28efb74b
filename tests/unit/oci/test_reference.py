from __future__ import annotations

import pytest

from pallet.errors import InvalidArgument
from pallet.oci.reference import Reference
from pallet.remote.push import source_key

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("raw", "full", "registry", "repository", "tag"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu", "latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "docker.io", "library/ubuntu", "22.04"),
        ("user/app", "docker.io/user/app:latest", "docker.io", "user/app", "latest"),
        (
            "index.docker.io/user/app",
            "docker.io/user/app:latest",
            "docker.io",
            "user/app",
            "latest",
        ),
        ("localhost/app", "localhost/app:latest", "localhost", "app", "latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000", "a/b", "t"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000", "x", "latest"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000", "x", "y"),
        ("ghcr.io/o/r/s:v1.2", "ghcr.io/o/r/s:v1.2", "ghcr.io", "o/r/s", "v1.2"),
        (
            "Registry.Example.com/a",
            "Registry.Example.com/a:latest",
            "Registry.Example.com",
            "a",
            "latest",
        ),
        (
            "a__b/c-d--e.f_g",
            "docker.io/a__b/c-d--e.f_g:latest",
            "docker.io",
            "a__b/c-d--e.f_g",
            "latest",
        ),
    ],
)
def test_normalisation(raw: str, full: str, registry: str, repository: str, tag: str) -> None:
    r = Reference.parse(raw)
    assert (str(r), r.registry, r.repository, r.tag) == (full, registry, repository, tag)


def test_digests_and_views() -> None:
    r = Reference.parse(f"ubuntu@{D}")
    assert r.tag == "" and r.digest == D and r.object == D
    assert str(r) == f"docker.io/library/ubuntu@{D}"
    assert r.familiar() == f"ubuntu@{D}"
    both = Reference.parse(f"localhost:5000/a:v1@{D}")
    assert both.tag == "v1" and both.digest == D and both.object == D
    assert Reference.parse("x", default_tag=False).tag == ""
    assert Reference.parse("docker.io/library/x").api_host == "registry-1.docker.io"
    assert Reference.parse("localhost:5000/x").hostname == "localhost"
    assert Reference.parse("[::1]:5000/x").hostname == "::1"
    # containerd's distribution-source key uses Go's url.Hostname(): no port
    prefix = "containerd.io/distribution.source."
    assert source_key(Reference.parse("127.0.0.1:5000/a/b")) == prefix + "127.0.0.1"
    assert source_key(Reference.parse("[::1]:5000/a")) == prefix + "::1"
    assert source_key(Reference.parse("ubuntu")) == prefix + "docker.io"
    assert Reference.parse("user/app:1").familiar() == "user/app:1"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "at least one component"),
        ("Ubuntu", "must be lowercase"),
        ("docker.io/User/app", "must be lowercase"),
        ("a" * 64, "64-byte hexadecimal"),
        ("ubuntu:bad tag", "invalid"),
        ("ubuntu:" + "t" * 129, "invalid tag format"),
        ("ubuntu@sha256:abc", "invalid digest format"),
        ("ubuntu@md5:" + "a" * 32, "invalid digest format"),
        ("a//b", "invalid"),
        ("-a/b", "invalid"),
        ("host:port/x", "invalid"),
        ("x/" + "a" * 260, "255 characters"),
    ],
)
def test_errors_name_the_value(raw: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        Reference.parse(raw)
    assert why in str(ei.value)
    assert repr(raw)[:30].strip("'") in str(ei.value)
