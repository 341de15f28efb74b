"""Round trips against a real docker-registry, checked with skopeo: plain HTTP, HTTPS + htpasswd
with a generated CA, and Bearer token auth."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from pallet.images import walk
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.reference import Reference
from pallet.remote import (
    Options,
    PushOutcome,
    RegistryNotFound,
    fetch_manifest,
    pull,
    push,
    push_by_digest,
    resolve,
)
from pallet.remote.push import source_key
from support.images import build_index, random_image
from support.registry import PASSWORD, USER, Registry, options_for
from support.validate import validate_image

pytestmark = pytest.mark.integration
MiB = 1 << 20


def skopeo_args(reg: Registry, prefix: str = "") -> list[str]:
    """skopeo flags to reach ``reg`` (prefix: ``src-``/``dest-`` for copy)."""
    args: list[str] = []
    if reg.tls is not None:
        args.append(f"--{prefix}cert-dir={reg.tls.cert_dir}")
    else:
        args.append(f"--{prefix}tls-verify=false")
    if reg.users:
        args.append(f"--{prefix}creds={USER}:{PASSWORD}")
    return args


def skopeo(*args: str) -> str:
    res = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def raw_digest(reg: Registry, ref: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", *skopeo_args(reg), f"docker://{ref}"],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def layout_root(d: Path) -> str:
    index = json.loads((d / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def _graph(db: Store, root: Descriptor) -> set[str]:
    return {str(d.digest) for d in walk(db.content, root)}


@pytest.fixture(params=["plain", "tls", "token"])
def registry(request: pytest.FixtureRequest) -> Registry:
    reg: Registry = request.getfixturevalue(f"{request.param}_registry")
    return reg


def test_round_trip_checked_by_skopeo(
    registry: Registry, store: Store, store2: Store, repo: str, tmp_path: Path
) -> None:
    img = random_image(store, 21, sizes=[3 * MiB, 20000, 0])
    root, blobs = img.manifest, img.blobs
    o = options_for(registry, chunk_size=1 * MiB, monolithic_max=1 * MiB)
    events = []
    res = push(
        store.content, root, f"{registry.host}/{repo}:v1", options=o, on_progress=events.append
    )
    assert res[0].name == f"{registry.host}/{repo}:v1"
    assert set(res[0].blobs) == {d.digest for d in blobs}
    assert set(res[0].blobs.values()) == {PushOutcome.UPLOADED}
    assert raw_digest(registry, f"{registry.host}/{repo}:v1") == root.digest
    out = tmp_path / "layout"
    skopeo(
        "copy",
        "--preserve-digests",
        *skopeo_args(registry, "src-"),
        f"docker://{registry.host}/{repo}:v1",
        f"oci:{out}:v1",
    )
    assert layout_root(out) == root.digest
    for d in blobs:
        assert (out / "blobs" / "sha256" / d.digest.hex).stat().st_size == d.size
    # progress: per blob, bytes and a start time, then completion
    big = [e for e in events if e.id == str(blobs[1].digest)]
    assert big[0].current == 0 and big[-1].current == big[-1].total == 3 * MiB
    assert big[-1].done and big[-1].started is not None
    assert len(big) >= 4  # intermediate byte counts, not just start and end
    # again: everything exists now
    res2 = push(store.content, root, f"{registry.host}/{repo}:v1", options=o)
    assert set(res2[0].blobs.values()) == {PushOutcome.EXISTS}
    assert set(res2[0].manifests.values()) == {PushOutcome.EXISTS}
    # and back into another store
    got = pull(f"{registry.host}/{repo}:v1", store2.content, options=o)
    assert got.digest == root.digest
    assert _graph(store2, got) == _graph(store, root)
    key = source_key(Reference.parse(f"{registry.host}/{repo}"))
    for d in blobs:
        assert store2.content.info(d.digest).labels[key] == repo
    mlabels = store2.content.info(root.digest).labels
    assert mlabels["containerd.io/gc.ref.content.config"] == blobs[0].digest
    assert mlabels["containerd.io/gc.ref.content.l.0"] == blobs[1].digest
    # the pushing store learnt the source too
    assert store.content.info(blobs[1].digest).labels[key] == repo
    validate_image(store2.content, got)


def test_index_push_tags_only_the_root_and_platform_pull(
    token_registry: Registry, store: Store, store2: Store, repo: str, tmp_path: Path
) -> None:
    shared = b"shared layer " * 5000
    amd_img = random_image(store, 31, sizes=[40000], shared=[shared])
    arm_img = random_image(store, 32, sizes=[50000], shared=[shared], platform="linux/arm64")
    amd, amd_blobs = amd_img.manifest, amd_img.blobs
    arm, arm_blobs = arm_img.manifest, arm_img.blobs
    index = build_index(store, [amd_img, arm_img])
    o = options_for(token_registry)
    res = push(store.content, index, f"{token_registry.host}/{repo}:multi", options=o)
    # the shared layer was uploaded once
    assert len(res[0].blobs) == len({d.digest for d in amd_blobs + arm_blobs})
    assert raw_digest(token_registry, f"{token_registry.host}/{repo}:multi") == index.digest
    tags = _tags(token_registry, repo, o)
    assert tags == ["multi"]
    out = tmp_path / "layout"
    skopeo(
        "copy", "--all", "--preserve-digests", *skopeo_args(token_registry, "src-"),
        f"docker://{token_registry.host}/{repo}:multi", f"oci:{out}:multi",
    )  # fmt: skip
    assert layout_root(out) == index.digest
    got = pull(
        f"{token_registry.host}/{repo}:multi", store2.content, platform="linux/arm64", options=o
    )
    assert got.digest == index.digest
    assert store2.content.info(arm.digest).size == arm.size
    with pytest.raises(NotFound):
        store2.content.info(amd.digest)
    ilabels = store2.content.info(index.digest).labels
    assert ilabels["containerd.io/gc.ref.content.m.0"] == amd.digest
    assert ilabels["containerd.io/gc.ref.content.m.1"] == arm.digest
    validate_image(store2.content, got, partial=True)  # linux/arm64 only


def _tags(reg: Registry, repo: str, o: Options) -> list[str]:
    from pallet.remote.auth import repository_scope
    from pallet.remote.client import Session
    from pallet.remote.protocol import Request

    with Session(o) as s:
        base = s.endpoint(reg.host)
        resp = s.send(
            Request(
                method="GET",
                url=f"{base}/v2/{repo}/tags/list",
                scopes=(repository_scope(repo, "pull"),),
            ),
            s._host(reg.host),
        )
    if resp.status == 404:
        return []
    return sorted(json.loads(resp.body).get("tags") or [])


def test_push_by_digest_and_several_names(
    plain_registry: Registry, store: Store, repo: str
) -> None:
    root = random_image(store, 41, sizes=[1000]).manifest
    o = options_for(plain_registry)
    with pytest.raises(
        InvalidArgument, match=r"can't push tagged ref 127\.0\.0\.1:\d+/test/\w+:v1 by digest"
    ):
        push_by_digest(store.content, root, f"{plain_registry.host}/{repo}:v1", options=o)
    res = push_by_digest(store.content, root, f"{plain_registry.host}/{repo}", options=o)
    assert res[0].name == f"{plain_registry.host}/{repo}"
    assert _tags(plain_registry, repo, o) == []
    assert resolve(f"{plain_registry.host}/{repo}@{root.digest}", options=o).digest == root.digest
    names = f"{plain_registry.host}/{repo}-a:one,{plain_registry.host}/{repo}-b:two"
    res = push(store.content, root, names, options=o)
    assert [r.name for r in res] == [
        f"{plain_registry.host}/{repo}-a:one",
        f"{plain_registry.host}/{repo}-b:two",
    ]
    assert set(res[1].blobs.values()) == {PushOutcome.MOUNTED}  # from -a, via the new label
    assert _tags(plain_registry, f"{repo}-b", o) == ["two"]


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _oci_layout(d: Path, docker_types: bool = False) -> tuple[str, list[str]]:
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h

    layers = [_tar_gz({"hello.txt": b"hello\n"}), _tar_gz({"big.bin": bytes(range(256)) * 8000})]
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": put(config), "size": len(config)},
        "layers": [
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": put(b), "size": len(b)} for b in layers
        ],
    }
    mbytes = json.dumps(manifest).encode()
    mdigest = put(mbytes)
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": mt.OCI_MANIFEST,
                        "digest": mdigest,
                        "size": len(mbytes),
                        "annotations": {"org.opencontainers.image.ref.name": "v1"},
                    }
                ],
            }
        )
    )
    return mdigest, [manifest["config"]["digest"]] + [x["digest"] for x in manifest["layers"]]  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_pull_image_pushed_by_skopeo(
    plain_registry: Registry, store: Store, repo: str, tmp_path: Path, fmt: str
) -> None:
    _, blob_digests = _oci_layout(tmp_path / "src")
    skopeo(
        "copy", "--format", fmt, *skopeo_args(plain_registry, "dest-"),
        f"oci:{tmp_path / 'src'}:v1", f"docker://{plain_registry.host}/{repo}:v1",
    )  # fmt: skip
    want = raw_digest(plain_registry, f"{plain_registry.host}/{repo}:v1")
    o = options_for(plain_registry)
    got = pull(f"{plain_registry.host}/{repo}:v1", store.content, options=o)
    assert got.digest == want
    assert got.media_type == (mt.OCI_MANIFEST if fmt == "oci" else mt.DOCKER_MANIFEST)
    graph = _graph(store, got)
    for d in blob_digests[1:]:  # layers keep their digests in both formats
        assert d in graph
        with store.content.open(Digest(d)) as f:
            assert "sha256:" + hashlib.sha256(f.read()).hexdigest() == d
    desc, data = fetch_manifest(f"{plain_registry.host}/{repo}:v1", options=o)
    assert desc.digest == want and hashlib.sha256(data).hexdigest() == want[7:]
    validate_image(store.content, got)


def test_lazy_pull_then_push_mounts_base_layers(
    plain_registry: Registry, token_registry: Registry, store: Store, store2: Store, repo: str
) -> None:
    base_img = random_image(store, 51, sizes=[2 * MiB, 30000])
    base, base_blobs = base_img.manifest, base_img.blobs
    o = options_for(plain_registry)
    push(store.content, base, f"{plain_registry.host}/{repo}-base:v1", options=o)
    got = pull(f"{plain_registry.host}/{repo}-base:v1", store2.content, layers=False, options=o)
    assert got.digest == base.digest
    for layer in base_blobs[1:]:
        with pytest.raises(NotFound):
            store2.content.info(layer.digest)
    # an image built on the base: its config and one new layer are local, base layers are not
    from support.images import put

    new_layer = put(store2, b"new layer data " * 1000, media_type=mt.OCI_LAYER)
    cfg = put(
        store2,
        b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}',
        media_type=mt.OCI_CONFIG,
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": cfg.to_json(),
        "layers": [d.to_json() for d in base_blobs[1:]] + [new_layer.to_json()],
    }
    m = put(store2, json.dumps(manifest).encode(), media_type=mt.OCI_MANIFEST)
    res = push(store2.content, m, f"{plain_registry.host}/{repo}-app:v1", options=o)
    outcomes = res[0].blobs
    assert all(outcomes[d.digest] == PushOutcome.MOUNTED for d in base_blobs[1:])
    assert outcomes[new_layer.digest] == PushOutcome.UPLOADED
    assert raw_digest(plain_registry, f"{plain_registry.host}/{repo}-app:v1") == m.digest
    # a registry that has never seen the base: the error says what is missing
    with pytest.raises(FailedPrecondition, match="not in the local store"):
        push(
            store2.content,
            m,
            f"{token_registry.host}/{repo}-app:v1",
            options=options_for(token_registry),
        )


def test_tls_needs_the_ca_or_insecure(tls_registry: Registry, store: Store, repo: str) -> None:
    root = random_image(store, 61, sizes=[1000]).manifest
    name = f"{tls_registry.host}/{repo}:v1"
    no_ca = options_for(tls_registry, ca_file=None)
    with pytest.raises(Unavailable, match="not reachable"):
        push(store.content, root, name, options=no_ca)
    res = push(store.content, root, name, options=no_ca.with_insecure(tls_registry.host))
    assert res[0].descriptor.digest == root.digest


def test_wrong_password_is_unauthorized(
    tls_registry: Registry, token_registry: Registry, store: Store, repo: str
) -> None:
    from pallet.remote import Credentials, Unauthorized

    root = random_image(store, 62, sizes=[1000]).manifest
    for reg in (tls_registry, token_registry):
        o = options_for(reg, credentials={reg.host: Credentials(username=USER, password="wrong")})
        with pytest.raises(Unauthorized) as ei:
            push(store.content, root, f"{reg.host}/{repo}:v1", options=o)
        assert "wrong" not in str(ei.value)
    with pytest.raises(RegistryNotFound):
        resolve(f"{tls_registry.host}/{repo}:nope", options=options_for(tls_registry))
