"""``Store.export`` through the public API only (names in ``pallet.__all__``): directories in,
images out, checked by their bytes (the layers in an OCI tarball the export writes, the
manifests a real registry serves) and against the command line."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

import pallet
from support.containerd import Containerd, new_namespace
from support.registry import Registry
from support.validate import validate_layout

EPOCH = 1_700_000_000


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


class Archive:
    """An OCI layout tarball, read by its ``index.json`` and blobs."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            self.files = {
                m.name: tf.extractfile(m).read()  # type: ignore[union-attr]
                for m in tf.getmembers()
                if m.isfile()
            }
        self.index = json.loads(self.files["index.json"])

    def blob(self, digest: str) -> bytes:
        data = self.files["blobs/" + digest.replace(":", "/")]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    def json(self, digest: str) -> Any:
        return json.loads(self.blob(digest))

    def root(self) -> dict[str, Any]:
        (desc,) = self.index["manifests"]
        return dict(desc)

    def manifest(self, platform: str | None = None) -> dict[str, Any]:
        """The root manifest, or the one of ``platform`` in the root index."""
        doc = self.json(self.root()["digest"])
        if platform is None:
            assert "layers" in doc
            return dict(doc)
        for m in doc["manifests"]:
            if f"{m['platform']['os']}/{m['platform']['architecture']}" == platform:
                return dict(self.json(m["digest"]))
        raise AssertionError(f"no {platform} in {doc}")

    def config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json(manifest["config"]["digest"]))

    def layer(self, desc: dict[str, Any]) -> dict[str, bytes | None]:
        """A layer's entries: path -> file bytes (None for a directory or other entry)."""
        data = self.blob(desc["digest"])
        if desc["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            return {
                m.name: tf.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                for m in tf.getmembers()
            }


def oci(store: pallet.Store, inputs: list[pallet.Layer | pallet.RootFS], **kw: Any) -> Archive:
    """The export as an OCI tarball in memory (validated), at the fixed epoch."""
    buf = io.BytesIO()
    kw.setdefault("source_date_epoch", EPOCH)
    result = store.export(inputs, output="oci", dest=buf, **kw)
    archive = Archive(buf.getvalue())
    validate_layout(archive.data)
    assert archive.root()["digest"] == result.digest
    return archive


def blobs(root: Path) -> list[str]:
    """Every blob file under the store's root (its documented layout)."""
    return sorted(p.name for p in (root / "content" / "blobs").rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with pallet.Store(root=tmp_path / "store") as s:
        yield s


def test_a_directory_becomes_one_layer_at_its_dest(store: pallet.Store, tmp_path: Path) -> None:
    src = tree(tmp_path / "dist", {"hello.txt": b"hello\n", "bin/run": b"#!/bin/sh\n"})
    archive = oci(store, [pallet.Layer(str(src), dest="/app")], names=["example.com/app:1"])
    man = archive.manifest()
    (layer,) = man["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert archive.layer(layer) == {
        "app": None,
        "app/bin": None,
        "app/bin/run": b"#!/bin/sh\n",
        "app/hello.txt": b"hello\n",
    }
    cfg = archive.config(man)
    assert cfg["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(gzip.decompress(archive.blob(layer["digest"]))).hexdigest()
    ]
    assert archive.root()["annotations"]["org.opencontainers.image.ref.name"] == "1"


def test_stored_image_has_the_layer_bytes(store: pallet.Store, tmp_path: Path) -> None:
    """Into the store (the default output); the stored image, exported again as the base of an
    export without inputs, is the same image with the same layer."""
    src = tree(tmp_path / "d", {"a": b"A" * 5000})
    result = store.export(
        [pallet.Layer(str(src))], names="example.com/x:1", source_date_epoch=EPOCH
    )
    assert result.names == ("example.com/x:1",)
    assert result.metadata["containerimage.digest"] == result.digest
    assert result.metadata["containerimage.descriptor"]["digest"] == result.digest
    again = oci(store, [], base="example.com/x:1")
    (layer,) = again.manifest()["layers"]
    assert again.layer(layer) == {"a": b"A" * 5000}
    # the same inputs at the same epoch give the stored digest
    assert oci(store, [pallet.Layer(str(src))]).root()["digest"] == result.digest


def test_two_platforms_from_two_directories_make_an_index(
    store: pallet.Store, tmp_path: Path
) -> None:
    amd = tree(tmp_path / "amd64", {"arch": b"amd64"})
    arm = tree(tmp_path / "arm64", {"arch": b"arm64"})
    app = tree(tmp_path / "app", {"main.py": b"print(1)\n"})
    archive = oci(
        store,
        [],
        platform={
            "linux/amd64": [pallet.RootFS(str(amd)), pallet.Layer(str(app), dest="/app")],
            "linux/arm64": [pallet.RootFS(str(arm)), pallet.Layer(str(app), dest="/app")],
        },
    )
    assert archive.root()["mediaType"] == "application/vnd.oci.image.index.v1+json"
    index = archive.json(archive.root()["digest"])
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    for arch in ("amd64", "arm64"):
        man = archive.manifest(f"linux/{arch}")
        assert archive.config(man)["architecture"] == arch
        rootfs, top = man["layers"]
        assert archive.layer(rootfs) == {"arch": arch.encode()}
        assert archive.layer(top) == {"app": None, "app/main.py": b"print(1)\n"}
    # a list of platforms: the same inputs for each; one platform as a string: one manifest
    both = oci(store, [pallet.Layer(str(app))], platform=["linux/amd64", "linux/arm64"])
    assert len(both.json(both.root()["digest"])["manifests"]) == 2
    one = oci(store, [pallet.Layer(str(app))], platform="linux/arm64")
    assert one.config(one.manifest())["architecture"] == "arm64"


def test_base_from_the_store_and_config_merging(store: pallet.Store, tmp_path: Path) -> None:
    base_dir = tree(tmp_path / "base", {"etc/os-release": b"ID=test\n"})
    store.export(
        [pallet.Layer(str(base_dir))],
        names=["example.com/base:1"],
        config=pallet.Config(
            env={"PATH": "/usr/bin", "LANG": "C"},
            labels={"a": "1"},
            cmd=["sh"],
            exposed_ports=["53/udp"],
        ),
        source_date_epoch=EPOCH,
    )
    top = tree(tmp_path / "top", {"app/run": b"run"})
    archive = oci(
        store,
        [pallet.Layer(str(top))],
        base="example.com/base:1",
        config=pallet.Config(
            env={"PATH": "/app:/usr/bin", "DEBUG": "1"},
            labels={"b": "2"},
            entrypoint=["/app/run"],
            cmd=[],
            workdir="/app",
            user="1000",
            exposed_ports=["8080"],
        ),
    )
    man = archive.manifest()
    base_layer, top_layer = man["layers"]
    assert archive.layer(base_layer) == {"etc": None, "etc/os-release": b"ID=test\n"}
    assert archive.layer(top_layer) == {"app": None, "app/run": b"run"}
    c = archive.config(man)["config"]
    # env merges by key (a key set again moves to the end), labels merge, cmd=[] clears
    assert c["Env"] == ["LANG=C", "PATH=/app:/usr/bin", "DEBUG=1"]
    assert c["Labels"] == {"a": "1", "b": "2"}
    assert c["Entrypoint"] == ["/app/run"] and c.get("Cmd") is None
    assert c["WorkingDir"] == "/app" and c["User"] == "1000"
    assert c["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    # raw replaces the base's config; the fields still apply on top
    raw = {"architecture": "amd64", "os": "linux", "config": {"Env": ["X=1"]}}
    archive = oci(
        store,
        [pallet.Layer(str(top))],
        base="example.com/base:1",
        config=pallet.Config(raw=raw, env={"Y": "2"}),
    )
    c = archive.config(archive.manifest())["config"]
    assert c["Env"] == ["X=1", "Y=2"] and "Labels" not in c


def test_push_to_a_registry(store: pallet.Store, tmp_path: Path, plain_registry: Registry) -> None:
    src = tree(tmp_path / "d", {"f": os.urandom(20_000)})
    repo = f"test/{uuid.uuid4().hex[:10]}"
    ref = f"{plain_registry.host}/{repo}:1"
    result = store.export(
        [pallet.Layer(str(src))], names=[ref], push=True, compression="zstd", store=False
    )
    req = urllib.request.Request(
        f"{plain_registry.url}/v2/{repo}/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == result.digest
    (layer,) = json.loads(body)["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    # a fresh store exports on top of it: the base is pulled, its layer reused as it is
    with pallet.Store(root=tmp_path / "fresh") as fresh:
        child = oci(fresh, [pallet.Layer(str(src), dest="/copy")], base=ref)
        assert child.manifest()["layers"][0]["digest"] == layer["digest"]


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_tarball_to_a_path_and_to_a_file_object(
    store: pallet.Store, tmp_path: Path, fmt: str
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    path = tmp_path / f"img-{fmt}.tar"
    kw: dict[str, Any] = {"names": ["example.com/t:1"], "output": fmt, "source_date_epoch": EPOCH}
    by_path = store.export([pallet.Layer(str(src))], dest=path, **kw)
    buf = io.BytesIO()
    by_stream = store.export([pallet.Layer(str(src))], dest=buf, **kw)
    assert by_path == by_stream
    assert path.read_bytes() == buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = set(tf.getnames())
    if fmt == "docker":
        assert "manifest.json" in names
        manifest = json.loads(Archive(buf.getvalue()).files["manifest.json"])
        assert manifest[0]["RepoTags"] == ["example.com/t:1"]
    else:
        assert {"oci-layout", "index.json"} <= names
        validate_layout(buf.getvalue())


def test_layout_directory(store: pallet.Store, tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    dest = tmp_path / "layout"
    result = store.export([pallet.Layer(str(src))], output="oci", dest=dest, tar=False)
    (root,) = validate_layout(dest)
    assert str(root.digest) == result.digest


def test_several_outputs_in_one_export(store: pallet.Store, tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    buf = io.BytesIO()
    result = store.export(
        [pallet.Layer(str(src))],
        outputs=[
            "type=image,name=example.com/o:1",
            {"type": "oci", "dest": buf, "name": "example.com/o:2"},
        ],
        source_date_epoch=EPOCH,
    )
    assert Archive(buf.getvalue()).root()["digest"] == result.digest
    assert result.names == ("example.com/o:1", "example.com/o:2")
    # the stored one is the same image
    assert oci(store, [], base="example.com/o:1").root()["digest"] == result.digest


def test_progress_receives_typed_events_per_step(store: pallet.Store, tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    events: list[pallet.Progress] = []
    lock = threading.Lock()

    def record(p: pallet.Progress) -> None:
        with lock:
            events.append(p)

    store.export([pallet.Layer(str(src))], names=["p:1"], progress=record)
    assert all(isinstance(e, pallet.Progress) for e in events)
    assert {e.vertex for e in events} == {"exporting to image"}
    first, last = events[0], events[-1]
    assert (first.id, first.done, last.id, last.done) == (
        "exporting to image",
        False,
        "exporting to image",
        True,
    )
    ids = [e.id for e in events if not e.parent]
    assert "exporting layers" in ids and "naming to p:1" in ids
    layers = [e for e in events if e.parent == "exporting layers" and e.done]
    assert layers and layers[-1].total == layers[-1].current > 0


def test_same_digest_as_the_command_line(store: pallet.Store, tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"arch": b"amd64", "etc/x": b"x"})
    b = tree(tmp_path / "b", {"arch": b"arm64"})
    app = tree(tmp_path / "app", {"run": b"run"})
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "pallet.cli",
            "--root",
            str(tmp_path / "cli-store"),
            "export",
            "--rootfs",
            f"linux/amd64={a}",
            "--rootfs",
            f"linux/arm64={b}",
            "--layer",
            f"{app}:/app",
            "--env",
            "A=1",
            "--cmd",
            '["/app/run"]',
            "--expose",
            "80",
            "-o",
            "type=image,name=example.com/same:1,compression=zstd,oci-mediatypes=false",
            "--progress",
            "quiet",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)},
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    result = store.export(
        [],
        platform={
            "linux/amd64": [pallet.RootFS(str(a)), pallet.Layer(str(app), dest="/app")],
            "linux/arm64": [pallet.RootFS(str(b)), pallet.Layer(str(app), dest="/app")],
        },
        config=pallet.Config(env={"A": "1"}, cmd=["/app/run"], exposed_ports=["80"]),
        names=["example.com/same:1"],
        compression="zstd",
        oci_mediatypes=False,
        source_date_epoch=EPOCH,
    )
    assert cli.stdout.strip() == result.digest


def test_concurrent_exports_on_one_store(store: pallet.Store, tmp_path: Path) -> None:
    """One Store, several threads: each export is whole and is what it is alone."""
    dirs = [tree(tmp_path / f"d{i}", {"n": str(i).encode() * 1000}) for i in range(4)]
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            r = store.export(
                [pallet.Layer(str(dirs[i]))], names=[f"c:{i}"], source_date_epoch=EPOCH
            )
            got[i] = r.digest
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        assert oci(store, [pallet.Layer(str(dirs[i]))]).root()["digest"] == got[i]
        assert oci(store, [], base=f"c:{i}").root()["digest"] == got[i]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"inputs": ["dist"]}, "input 'dist': want pallet.Layer or pallet.RootFS"),
        ({"inputs": "dist"}, "inputs 'dist': want a list"),
        ({"missing": True}, "not a directory"),
        ({"layer_dest": "../up"}, "dest '../up'"),
        ({"rootfs_on_layer": True}, "give every RootFS before the Layers"),
        ({"platform": "linux"}, "platform 'linux'"),
        ({"platform": {"linux/amd64": [], "linux/x86_64": []}}, "given twice"),
        ({"output": "tarball"}, "output type 'tarball'"),
        ({"output": "oci"}, "output oci: dest is required"),
        ({"dest": "x.tar"}, "dest: the image output writes to the store"),
        ({"names": ["Bad Name"]}, "failed to parse Bad Name"),
        ({"names": ["a,b"]}, "name 'a,b'"),
        ({"push": "yes"}, "push 'yes': want True or False"),
        ({"compression": "lz4"}, "compression 'lz4'"),
        ({"compression": "zstd", "compression_level": 40}, "compression level 40"),
        ({"annotations": {"index:org.x": "1"}}, "index annotations not supported"),
        ({"annotations": {"bad key": "1"}}, "annotation 'bad key'"),
        ({"options": {"push": "maybe"}}, "non-bool value specified for push"),
        ({"options": {"compression": "zstd"}, "compression": "gzip"}, "option 'compression'"),
        ({"outputs": ["type=image,push=1"], "push": True}, "not both (given: push)"),
        ({"outputs": ['type=image,"name=a']}, "extraneous or missing"),
        ({"config": pallet.Config(cmd="python app.py")}, "config cmd 'python app.py'"),  # type: ignore[arg-type]
        ({"config": pallet.Config(env={"A=B": "1"})}, "config env 'A=B'"),
        ({"config": pallet.Config(exposed_ports=["70000"])}, "port '70000'"),
        ({"config": pallet.Config(raw={"x": object()})}, "config raw: not JSON"),
        ({"source_date_epoch": "1700000000"}, "source_date_epoch '1700000000'"),
        ({"base": "a b"}, "base a b: not in the store and not a reference"),
        ({"ca_file": "/nope/ca.pem"}, "ca file /nope/ca.pem: not a file"),
        ({"output": "oci", "dest": io.StringIO()}, "a text stream; want a binary file object"),
        ({"output": "oci", "dest": "/proc/version", "tar": False}, "is not a directory"),
        ({"outputs": [{"type": "oci", "dest": io.BytesIO(), "tar": "false"}]}, "tar=false"),
    ],
)
def test_bad_input_names_the_value_and_leaves_nothing(
    tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    inputs: Any = [pallet.Layer(str(src))]
    if "inputs" in kw:
        inputs = kw.pop("inputs")
    if kw.pop("missing", False):
        inputs = [pallet.Layer(str(tmp_path / "nope"))]
    if "layer_dest" in kw:
        inputs = [pallet.Layer(str(src), dest=kw.pop("layer_dest"))]
    if kw.pop("rootfs_on_layer", False):
        inputs = [pallet.Layer(str(src)), pallet.RootFS(str(src))]
    root = tmp_path / "store"
    with pallet.Store(root=root) as store, pytest.raises(pallet.InvalidArgument) as e:
        store.export(inputs, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert blobs(root) == []
    assert not (tmp_path / "x.tar").exists()


def test_a_failed_tarball_export_leaves_no_file(store: pallet.Store, tmp_path: Path) -> None:
    """Docker archives hold no index: found out after the layers are written; the dest file is
    never created."""
    a = tree(tmp_path / "a", {"f": b"1"})
    dest = tmp_path / "out.tar"
    with pytest.raises(pallet.InvalidArgument, match="manifest lists"):
        store.export(
            [pallet.Layer(str(a))],
            platform=["linux/amd64", "linux/arm64"],
            output="docker",
            dest=dest,
        )
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pallet-")] == []


def test_a_missing_base_is_not_found(store: pallet.Store, tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    with pytest.raises(pallet.Error, match="base 127.0.0.1:1/none:1: not in the store"):
        store.export([pallet.Layer(str(src))], base="127.0.0.1:1/none:1")


def test_a_tarball_dest_that_is_a_directory_is_refused_up_front(
    store: pallet.Store, tmp_path: Path
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(pallet.InvalidArgument) as e:
        store.export([pallet.Layer(str(src))], output="oci", dest=dest)
    assert f"dest {dest}: is a directory" in str(e.value) and "\n" not in str(e.value)
    assert blobs(tmp_path / "store") == [] and list(dest.iterdir()) == []


def test_a_failed_tarball_write_names_the_dest(store: pallet.Store, tmp_path: Path) -> None:
    """The dest becomes a directory while the export runs: the rename over it fails, reported
    as a pallet error naming the dest (not the temporary file), which is removed."""
    src = tree(tmp_path / "d", {"f": b"1"})
    dest = tmp_path / "out.tar"

    def race(p: pallet.Progress) -> None:
        if p.id == "exporting to oci image format" and not dest.exists():
            (dest / "sub").mkdir(parents=True)

    with pytest.raises(pallet.Error) as e:
        store.export([pallet.Layer(str(src))], output="oci", dest=dest, progress=race)
    assert str(e.value).startswith(f"dest {dest}: ") and "\n" not in str(e.value)
    assert ".pallet-" not in str(e.value)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pallet-")] == []


def test_a_single_platform_base_of_another_platform_is_refused(
    store: pallet.Store, tmp_path: Path
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    store.export(
        [pallet.Layer(str(src))],
        names=["example.com/arm:1"],
        platform="linux/arm64",
        source_date_epoch=EPOCH,
    )
    top = tree(tmp_path / "top", {"g": b"2"})
    with pytest.raises(pallet.InvalidArgument) as e:
        store.export(
            [pallet.Layer(str(top))],
            base="example.com/arm:1",
            platform="linux/amd64",
            output="oci",
            dest=io.BytesIO(),
        )
    assert str(e.value) == "base example.com/arm:1: no manifest for platform linux/amd64"
    # its own platform still takes it
    archive = oci(store, [pallet.Layer(str(top))], base="example.com/arm:1", platform="linux/arm64")
    assert len(archive.manifest()["layers"]) == 2
    # no platform asked for (this machine's by default): BuildKit's warning, and the base is used
    warnings: list[str] = []
    if pallet.Platform.default().architecture != "arm64":
        archive = oci(
            store, [pallet.Layer(str(top))], base="example.com/arm:1", on_warning=warnings.append
        )
        assert len(archive.manifest()["layers"]) == 2
        assert warnings == [
            "base example.com/arm:1: its platform linux/arm64 does not match the default "
            f"{pallet.Platform.default()}"
        ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"inputs": [pallet.Layer(123)]}, "layer 123: want a directory path"),  # type: ignore[arg-type]
        ({"inputs": [pallet.RootFS(123)]}, "rootfs 123: want a directory path"),  # type: ignore[arg-type]
        ({"platform": 5}, "platform 5: want a platform"),
        ({"names": 5}, "names 5: want an image reference"),
        ({"ca_file": 5}, "ca_file 5: want a path"),
        ({"config": pallet.Config(exposed_ports=5)}, "config exposed_ports 5: want a list"),  # type: ignore[arg-type]
    ],
)
def test_a_value_of_the_wrong_type_is_invalid_argument(
    store: pallet.Store, tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    inputs = kw.pop("inputs", [pallet.Layer(str(src))])
    with pytest.raises(pallet.InvalidArgument) as e:
        store.export(inputs, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert blobs(tmp_path / "store") == []


def test_ports_are_normalised_once_for_every_platform(store: pallet.Store, tmp_path: Path) -> None:
    """The checked ports (``PORT/PROTO``) are what the config of each platform gets."""
    src = tree(tmp_path / "d", {"f": b"1"})
    archive = oci(
        store,
        [pallet.Layer(str(src))],
        platform=["linux/amd64", "linux/arm64"],
        config=pallet.Config(exposed_ports=["80", "53/udp"]),
    )
    for p in ("linux/amd64", "linux/arm64"):
        ports = archive.config(archive.manifest(p))["config"]["ExposedPorts"]
        assert ports == {"80/tcp": {}, "53/udp": {}}
    with pytest.raises(pallet.InvalidArgument) as e:
        store.export([pallet.Layer(str(src))], config=pallet.Config(exposed_ports=["0"]))
    assert "port '0'" in str(e.value)


def test_export_into_containerd(ctrd: Containerd, tmp_path: Path) -> None:
    """The same call on a containerd store: the daemon has the image, unpacked, and no lease."""
    src = tree(tmp_path / "d", {"hello.txt": b"hello\n"})
    ns = new_namespace()
    with pallet.Store.containerd(ctrd.socket, ns, root=tmp_path / "store") as store:
        assert store.kind == "containerd"
        result = store.export([pallet.Layer(str(src))], names=["example.com/ctr:1"], unpack=True)
    rows = ctrd.ctr(ns, "images", "ls").stdout.splitlines()[1:]
    assert [(r.split()[0], r.split()[2]) for r in rows] == [("example.com/ctr:1", result.digest)]
    assert ctrd.ctr(ns, "leases", "ls").stdout.splitlines()[1:] == []
    snapshots = ctrd.ctr(ns, "snapshots", "--snapshotter", "overlayfs", "ls").stdout
    assert len(snapshots.splitlines()) == 2  # the header and the image's one layer
