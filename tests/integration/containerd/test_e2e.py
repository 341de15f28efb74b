"""pallet's containerd client end to end against a private daemon, without the exporter.

The image is built here by hand: two gzip layers (the first holds a copy of the host's static
``/bin/busybox``, the second adds a file and whites one out), an OCI config and a manifest with
the GC labels. Everything is written under a temporary lease, unpacked with the daemon's
``Diff.Apply`` into the ``native`` snapshotter, the config is labelled with the snapshot chain,
the lease goes, ``ctr run`` starts the image, and deleting the image (sync) lets the daemon's
collector free every blob and snapshot that was written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pallet.containerd import Client, Layer, apply_layers, chain_ids, copy_image, unpack_image
from pallet.content import Info
from pallet.errors import DigestMismatch, NotFound
from pallet.images import Image
from pallet.leases import temporary
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import Digest
from support.containerd import Containerd, new_namespace
from support.validate import validate_image

pytestmark = pytest.mark.integration

BUSYBOX = "/bin/busybox"
GC = "containerd.io/gc.ref.content"


def sha(b: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(b).hexdigest())


def _tar(entries: Sequence[tuple[str, bytes | None, int]]) -> bytes:
    """A tar of (name, data or None for a directory, mode), mtime 0, root-owned."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, 0
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data)
    return buf.getvalue()


@dataclass
class Built:
    """An image's blobs: layers (blob bytes, diffID), config and manifest."""

    layers: list[tuple[Descriptor, bytes, Digest]]
    config: tuple[Descriptor, bytes]
    manifest: tuple[Descriptor, bytes]

    @property
    def blobs(self) -> list[Digest]:
        return [d.digest for d, _, _ in self.layers] + [
            self.config[0].digest,
            self.manifest[0].digest,
        ]

    @property
    def chain(self) -> list[Digest]:
        return chain_ids([diff for _, _, diff in self.layers])

    def rootfs_layers(self) -> list[Layer]:
        return [Layer(blob=d, diff_id=diff) for d, _, diff in self.layers]


def build_image(extra: bytes = b"") -> Built:
    if shutil.which("busybox") is None and not Path(BUSYBOX).exists():
        pytest.fail("busybox-static is required (apt-get install busybox-static)")
    bb = Path(BUSYBOX).read_bytes()
    l1 = _tar(
        [
            ("bin/", None, 0o755),
            ("bin/busybox", bb, 0o755),
            ("etc/", None, 0o755),
            ("etc/gone.txt", b"deleted by layer 2\n", 0o644),
        ]
    )
    l2 = _tar(
        [
            ("etc/", None, 0o755),
            ("etc/hello.txt", b"hello from layer 2\n" + extra, 0o644),
            ("etc/.wh.gone.txt", b"", 0o644),
        ]
    )
    layers = []
    for raw in (l1, l2):
        blob = _gzip(raw)
        layers.append(
            (Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha(blob), size=len(blob)), blob,
             sha(raw))
        )  # fmt: skip
    plat = Platform.default()
    cfg = json.dumps(
        {
            "architecture": plat.architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "echo", "hello-pallet"]},
            "rootfs": {"type": "layers", "diff_ids": [str(d) for _, _, d in layers]},
        },
        sort_keys=True,
    ).encode()
    cdesc = Descriptor(media_type=mt.OCI_CONFIG, digest=sha(cfg), size=len(cfg))
    man = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": cdesc.to_json(),
            "layers": [d.to_json() for d, _, _ in layers],
        },
        sort_keys=True,
    ).encode()
    mdesc = Descriptor(media_type=mt.OCI_MANIFEST, digest=sha(man), size=len(man))
    return Built(layers=layers, config=(cdesc, cfg), manifest=(mdesc, man))


def write_blob(
    client: Client, desc: Descriptor, data: bytes, lease: str, labels: dict[str, str]
) -> None:
    with client.content.writer(
        f"test-{desc.digest}", total=desc.size, expected=desc.digest, lease=lease
    ) as w:
        w.write(data[w.offset :])
        w.commit(desc.size, desc.digest, labels=labels)


def write_image(client: Client, b: Built, lease: str) -> None:
    """Children first; the manifest carries the GC edges to its config and layers."""
    for d, blob, diff in b.layers:
        write_blob(client, d, blob, lease, {"containerd.io/uncompressed": diff})
    write_blob(client, b.config[0], b.config[1], lease, {})
    labels = {f"{GC}.config": b.config[0].digest}
    labels.update({f"{GC}.l.{i}": d.digest for i, (d, _, _) in enumerate(b.layers)})
    write_blob(client, b.manifest[0], b.manifest[1], lease, labels)


def snapshot_names(ctrd: Containerd, ns: str) -> dict[str, str]:
    """name -> kind, from ``ctr snapshots --snapshotter native ls``."""
    out = ctrd.ctr(ns, "snapshots", "--snapshotter", "native", "ls").stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[-1] for line in out if line.strip()}


def test_write_unpack_run_and_collect(ctrd: Containerd, client: Client) -> None:
    ns = client.namespace
    b = build_image()
    name = "example.com/pallet/e2e:latest"
    with temporary(client.leases) as lease:
        write_image(client, b, lease)
        client.images.create(Image(name=name, target=b.manifest[0]))
        validate_image(client.content, b.manifest[0])
        seen: list[tuple[Digest, bool]] = []
        chain = apply_layers(
            client,
            "native",
            b.rootfs_layers(),
            lease,
            on_layer=lambda ly, applied: seen.append((ly.diff_id, applied)),
        )
        assert chain == b.chain[-1]
        assert seen == [(diff, True) for _, _, diff in b.layers]
        key = "containerd.io/gc.ref.snapshot.native"
        cfg = client.content.info(b.config[0].digest)
        client.content.update(
            Info(
                digest=cfg.digest,
                size=cfg.size,
                created_at=cfg.created_at,
                updated_at=cfg.updated_at,
                labels={key: chain},
            ),
            [f"labels.{key}"],
        )
        leased = {r.id for r in client.leases.list_resources(lease)}
        assert set(b.blobs) <= leased and set(b.chain) <= leased
    # the lease is gone; the image is the only root now
    assert ctrd.ctr(ns, "leases", "ls").stdout.splitlines()[1:] == []
    assert snapshot_names(ctrd, ns) == {c: "Committed" for c in b.chain}
    assert snapshot_names(ctrd, ns)[b.chain[1]] == "Committed"
    images = ctrd.ctr(ns, "images", "ls").stdout.splitlines()[1:]
    assert [line.split()[0] for line in images] == [name]
    # the unpacked tree: layer 2's whiteout applied by the daemon
    sn = client.snapshotter("native")
    view = sn.view("look", b.chain[-1])
    root = Path(view[0].as_dir())
    assert (root / "etc" / "hello.txt").read_bytes() == b"hello from layer 2\n"
    assert not (root / "etc" / "gone.txt").exists()
    assert (root / "bin" / "busybox").read_bytes() == Path(BUSYBOX).read_bytes()
    sn.remove("look")
    run = ctrd.ctr(
        ns,
        "run",
        "--rm",
        "--snapshotter",
        "native",
        name,
        "c1",
        "/bin/busybox",
        "echo",
        "hello-pallet",
    )
    assert run.stdout.strip() == "hello-pallet"
    # a GC now keeps everything: the image holds the manifest, the config holds the snapshots
    client.leases.create("gc-trigger")
    client.leases.delete("gc-trigger", sync=True)
    assert {i.digest for i in client.content.walk()} == set(b.blobs)
    validate_image(client.content, b.manifest[0])
    assert set(snapshot_names(ctrd, ns)) == set(b.chain)
    # deleting the image (sync) frees every blob and snapshot we wrote
    client.images.delete(name, sync=True)
    listed = ctrd.ctr(ns, "content", "ls").stdout
    assert not any(d in listed for d in b.blobs)
    assert list(client.content.walk()) == []
    assert snapshot_names(ctrd, ns) == {}
    assert ctrd.ctr(ns, "leases", "ls").stdout.splitlines()[1:] == []
    for d in b.blobs:  # and the bytes are gone from the daemon's disk, not only unlinked
        assert not (ctrd.content_root / "blobs" / "sha256" / d.hex).exists()


def test_apply_layers_skips_present_chains_and_checks_diff_ids(client: Client) -> None:
    b = build_image(extra=b"second image\n")
    with temporary(client.leases) as lease:
        write_image(client, b, lease)
        first = apply_layers(client, "native", b.rootfs_layers(), lease)
        seen: list[bool] = []
        again = apply_layers(
            client, "native", b.rootfs_layers(), lease, on_layer=lambda _ly, a: seen.append(a)
        )
        assert first == again == b.chain[-1] and seen == [False, False]
        # a wrong diffID: the daemon's applied digest disagrees, nothing is left behind
        bad = [b.rootfs_layers()[0], Layer(blob=b.layers[1][0], diff_id=sha(b"not it"))]
        with pytest.raises(DigestMismatch, match="wrong diff id"):
            apply_layers(client, "native", bad, lease)
        # a layer blob the namespace does not have
        missing = [Layer(blob=b.layers[0][0], diff_id=b.layers[0][2])]
        other = client.with_namespace(new_namespace())
        with temporary(other.leases) as lease2, pytest.raises(NotFound):
            apply_layers(other, "native", missing, lease2)
        assert list(other.snapshotter("native").walk()) == []
        names = {i.name for i in client.snapshotter("native").walk()}
        assert names == set(b.chain)  # no extract-… key survived the failure


def test_unpack_into_overlayfs(ctrd: Containerd, client: Client) -> None:
    b = build_image(extra=b"overlay\n")
    name = "example.com/pallet/overlay:1"
    with temporary(client.leases) as lease:
        write_image(client, b, lease)
        client.images.create(Image(name=name, target=b.manifest[0]))
        chain = unpack_image(client, b.manifest[0], snapshotter="overlayfs", lease=lease)
    assert chain == b.chain[-1]
    labels = client.content.info(b.config[0].digest).labels
    assert labels == {"containerd.io/gc.ref.snapshot.overlayfs": chain}
    out = ctrd.ctr(
        client.namespace,
        "run",
        "--rm",
        "--snapshotter",
        "overlayfs",
        name,
        "c2",
        "/bin/busybox",
        "cat",
        "/etc/hello.txt",
    )
    assert out.stdout == "hello from layer 2\noverlay\n"
    client.images.delete(name, sync=True)
    assert list(client.snapshotter("overlayfs").walk()) == []


def test_copy_image_from_the_embedded_store(ctrd: Containerd, client: Client, db: Store) -> None:
    b = build_image(extra=b"copied\n")
    # the image in pallet's own store first (as the exporter or `pallet load` would leave it)
    with temporary(db.leases) as lease:
        for d, blob, diff in b.layers:
            with db.content.writer(f"l-{d.digest}", lease=lease) as w:
                w.write(blob)
                w.commit(d.size, d.digest, labels={"containerd.io/uncompressed": diff})
        for d, data in (b.config, b.manifest):
            with db.content.writer(f"x-{d.digest}", lease=lease) as w:
                w.write(data)
                w.commit(d.size, d.digest)
        db.images.create(Image(name="local/e2e:1", target=b.manifest[0], labels={"from": "pallet"}))
    img = db.images.get("local/e2e:1")
    res = copy_image(client, db.content, img, names=["example.com/copied:1"], unpack=True)
    assert res.chain_id == b.chain[-1]
    assert (res.blobs_written, res.blobs_present) == (4, 0)
    assert res.bytes_written == sum(d.size for d in [x[0] for x in b.layers]) + sum(
        len(x[1]) for x in (b.config, b.manifest)
    )
    got = client.images.get("example.com/copied:1")
    assert got.target == b.manifest[0] and got.labels == {"from": "pallet"}
    man = client.content.info(b.manifest[0].digest).labels
    assert man == {
        f"{GC}.config": b.config[0].digest,
        f"{GC}.l.0": b.layers[0][0].digest,
        f"{GC}.l.1": b.layers[1][0].digest,
    }
    assert client.content.info(b.layers[1][0].digest).labels == {
        "containerd.io/uncompressed": b.layers[1][2]
    }
    assert ctrd.ctr(client.namespace, "leases", "ls").stdout.splitlines()[1:] == []
    validate_image(client.content, got.target)
    out = ctrd.ctr(
        client.namespace,
        "run",
        "--rm",
        "--snapshotter",
        "native",
        "example.com/copied:1",
        "c3",
        "/bin/busybox",
        "cat",
        "/etc/hello.txt",
    )
    assert out.stdout == "hello from layer 2\ncopied\n"
    # a second copy finds everything present and only names the image
    res2 = copy_image(client, db.content, img, names=["example.com/copied:2"], unpack=True)
    assert (res2.blobs_written, res2.blobs_present, res2.bytes_written) == (0, 4, 0)
    names = [i.name for i in client.images.list()]
    assert names == ["example.com/copied:1", "example.com/copied:2"]
    client.images.delete("example.com/copied:1")
    client.images.delete("example.com/copied:2", sync=True)
    assert list(client.content.walk()) == []


def test_cli_version_copy_images(
    ctrd: Containerd, client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pallet.cli.main import main
    from pallet.metadata.store import open_store

    b = build_image(extra=b"cli\n")
    root = tmp_path / "store"
    db = open_store(root)
    try:
        with temporary(db.leases) as lease:
            for d, data in [(d, blob) for d, blob, _ in b.layers] + [b.config, b.manifest]:
                with db.content.writer(f"w-{d.digest}", lease=lease) as w:
                    w.write(data)
                    w.commit(d.size, d.digest)
            db.images.create(Image(name="docker.io/library/cli:1", target=b.manifest[0]))
    finally:
        db.close()
    conn = [f"--containerd={ctrd.socket}", "--namespace", client.namespace]
    assert main(["containerd", "version", *conn]) == 0
    assert capsys.readouterr().out.startswith("containerd 1.")
    args = ["containerd", "copy", "cli:1", "--name", "example.com/cli:1", "--unpack", *conn]
    assert main([*args, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"example.com/cli:1: {b.manifest[0].digest}" in out
    assert f"unpacked into native: {b.chain[-1]}" in out
    assert main(["containerd", "images", *conn, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in listed] == ["example.com/cli:1"]
    validate_image(client.content, b.manifest[0])
    assert main(["containerd", "version", f"--containerd={tmp_path / 'none.sock'}"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"pallet: error: containerd at {tmp_path / 'none.sock'}: no such socket "
        "(is containerd running?)\n"
    )
    client.images.delete("example.com/cli:1", sync=True)


def test_layer_pipeline_writes_straight_into_containerd(client: Client, tmp_path: Path) -> None:
    """pallet's one-pass layer pipeline (tar -> diffID -> gzip -> digest -> store) with the
    containerd content store as its sink: the store the exporter is given."""
    from pallet.archive.diff import write_diff
    from pallet.compression import Compression
    from pallet.compression.pipeline import write_layer

    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
    (tree / "big").write_bytes(os.urandom(3 << 20))
    (tree / "link").symlink_to("bin/busybox")
    with temporary(client.leases) as lease:
        res = write_layer(
            lambda sink: write_diff(None, str(tree), sink),
            client.content,
            compression=Compression.GZIP,
            lease=lease,
        )
        info = client.content.info(res.descriptor.digest)
        assert info.size == res.descriptor.size
        assert info.labels["containerd.io/uncompressed"] == res.diff_id
        layer = Layer(blob=res.descriptor, diff_id=res.diff_id)
        chain = apply_layers(client, "native", [layer], lease)  # the daemon checks the diffID
        assert chain == res.diff_id
        view = client.snapshotter("native").view("v", chain, lease=lease)
        root = Path(view[0].as_dir())
        assert (root / "big").read_bytes() == (tree / "big").read_bytes()
        assert os.readlink(root / "link") == "bin/busybox"
        client.snapshotter("native").remove("v")


def _tree(root: str) -> dict[str, tuple[int, int, int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            data = Path(p).read_bytes() if os.path.isfile(p) and not os.path.islink(p) else b""
            digest = hashlib.sha256(data).hexdigest()[:16]
            # containerd's native snapshotter copies a parent's directories with the time of the
            # copy (it sets their times before filling them), whoever applies: not compared
            mtime = -1 if os.path.isdir(p) else int(st.st_mtime)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, mtime, digest)
    return out


def test_local_apply_matches_the_daemons_applier(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bind-mounted snapshots are filled by pallet's applier; the tree is the daemon's."""
    from pallet.containerd.diff import ContainerdApplier

    trees = []
    calls: list[Descriptor] = []
    real = ContainerdApplier.apply

    def spy(self: ContainerdApplier, desc: Descriptor, *a: object, **kw: object) -> object:
        calls.append(desc)
        return real(self, desc, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ContainerdApplier, "apply", spy)
    for mode in ("local", "daemon"):
        b = build_image(extra=f"local apply {mode}\n".encode())
        c = client.with_namespace(new_namespace(mode))
        calls.clear()
        monkeypatch.setenv("PALLET_CONTAINERD_APPLY", "auto" if mode == "local" else "daemon")
        with temporary(c.leases) as lease:
            write_image(c, b, lease)
            chain = apply_layers(c, "native", b.rootfs_layers(), lease)
            assert chain == b.chain[-1]
            sn = c.snapshotter("native")
            mounts = sn.view(f"view-{mode}", chain, lease=lease)
            trees.append(_tree(mounts[0].source))
            sn.remove(f"view-{mode}")
            assert len(calls) == (0 if mode == "local" else 2)
            # a wrong diffID is caught on the local path too, and nothing is left behind (under
            # the same lease: once it ends, the daemon's collector may take the blobs)
            if mode == "local":
                bad = [b.rootfs_layers()[0], Layer(blob=b.layers[1][0], diff_id=sha(b"not it"))]
                with pytest.raises(DigestMismatch, match="wrong diff"):
                    apply_layers(c, "native", bad, lease)
                assert {i.name for i in c.snapshotter("native").walk()} <= set(b.chain)
    hello = [t.pop("etc/hello.txt") for t in trees]
    assert trees[0] == trees[1]
    assert [h[3] for h in hello] == [
        hashlib.sha256(b"hello from layer 2\nlocal apply local\n").hexdigest()[:16],
        hashlib.sha256(b"hello from layer 2\nlocal apply daemon\n").hexdigest()[:16],
    ]
    assert hello[0][:3] == hello[1][:3]
    assert "etc/gone.txt" not in trees[0]
