"""``Store.save``, ``Store.load`` and ``Store.unpack`` through the public API only.

The images are the session's interop set (tests/conftest.py): archives that ``pallet save``
wrote, with the root filesystem each platform must unpack to.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

import pallet
from support.containerd import Containerd, new_namespace
from support.images import Interop, tree_state


def _index(data: bytes) -> dict[str, object]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("index.json")
        assert f is not None
        doc: dict[str, object] = json.load(f)
        return doc


def _corrupt(archive: bytes) -> bytes:
    """``archive`` with one byte of its largest blob changed."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        members = src.getmembers()
        big = max(members, key=lambda m: m.size)
        for m in members:
            f = src.extractfile(m) if m.isfile() else None
            if m is big and f is not None:
                data = bytearray(f.read())
                data[len(data) // 2] ^= 0xFF
                f = io.BytesIO(bytes(data))
            dst.addfile(m, f)
    return out.getvalue()


def test_load_save_to_path_and_file_object_load_back(interop: Interop, tmp_path: Path) -> None:
    name = interop.name("multi")
    root = interop.roots["multi"]
    with pallet.Store(root=tmp_path / "a") as a:
        loaded = a.load(interop.archive("multi"))
        assert [(i.digest, i.names, i.format) for i in loaded] == [(root.digest, (name,), "oci")]
        assert loaded[0].target.media_type == root.media_type
        assert loaded[0].target.size == root.size

        path = tmp_path / "out" / "multi.tar"
        path.parent.mkdir()
        written = a.save([name], path)
        buf = io.BytesIO()
        assert a.save(name, buf) == written  # one name as a plain string
        assert [(w.digest, w.names, w.format) for w in written] == [(root.digest, (name,), "oci")]
        # the same images, the same bytes, whatever the sink; nothing left beside the file
        assert buf.getvalue() == path.read_bytes()
        assert sorted(p.name for p in path.parent.iterdir()) == ["multi.tar"]
        assert _index(buf.getvalue())["manifests"] == [
            {
                **root.to_json(),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": "v1",
                },
            }
        ]

    # into a second store, from the path and from a file object: the same root
    with pallet.Store(root=tmp_path / "b") as b:
        assert [i.digest for i in b.load(path)] == [root.digest]
        again = b.load(io.BytesIO(buf.getvalue()), tag="example.com/other/multi:2")
        assert again[0].digest == root.digest
        assert again[0].names == (name, "example.com/other/multi:2")
        # and out again: byte for byte what the first store wrote
        out = io.BytesIO()
        b.save([name], out)
        assert out.getvalue() == path.read_bytes()


def test_docker_format_and_platform(interop: Interop, tmp_path: Path) -> None:
    name = interop.name("multi")
    arm = next(i for i in interop.built["multi"] if str(i.platform) == "linux/arm64")
    with pallet.Store(root=tmp_path / "s") as s:
        s.load(interop.archive("multi"))
        # a Docker archive holds one platform
        with pytest.raises(pallet.Unsupported, match="manifest lists"):
            s.save([name], io.BytesIO(), format="docker")
        buf = io.BytesIO()
        written = s.save([name], buf, format="docker", platform="linux/arm64")
        assert [(w.digest, w.format) for w in written] == [(arm.manifest.digest, "docker")]
        with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
            f = tf.extractfile("manifest.json")
            assert f is not None
            manifest = json.load(f)
        assert manifest[0]["RepoTags"] == ["example.com/interop/multi:v1"]
        assert manifest[0]["Config"] == f"blobs/sha256/{arm.config.digest.hex}"
    # pallet's Docker archive is an OCI layout too; without index.json, what docker save
    # writes, it loads back as a Docker archive
    docker_only = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as src,
        tarfile.open(fileobj=docker_only, mode="w") as dst,
    ):
        for m in src.getmembers():
            if m.name not in ("index.json", "oci-layout"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    with pallet.Store(root=tmp_path / "t") as t:
        back = t.load(io.BytesIO(buf.getvalue()))
        assert [(i.digest, i.names, i.format) for i in back] == [
            (arm.manifest.digest, (name,), "oci")
        ]
    with pallet.Store(root=tmp_path / "u") as u:
        back = u.load(io.BytesIO(docker_only.getvalue()))
        assert [(i.names, i.format) for i in back] == [((name,), "docker")]
        # a manifest is made for the archive's config and layers: the same image
        res = u.unpack(name, tmp_path / "rootfs")
        assert res.digest == back[0].digest
        assert res.diff_ids == tuple(str(d) for d in arm.diff_ids)
    assert tree_state(tmp_path / "rootfs") == tree_state(interop.expected["linux/arm64"])


def test_load_a_layout_directory(interop: Interop, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    with tarfile.open(interop.archive("oci")) as tf:
        tf.extractall(layout, filter="data")
    with pallet.Store(root=tmp_path / "s") as s:
        loaded = s.load(layout)
        assert [(i.digest, i.names) for i in loaded] == [
            (interop.roots["oci"].digest, (interop.name("oci"),))
        ]


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_unpack_writes_the_platforms_tree(interop: Interop, tmp_path: Path, platform: str) -> None:
    img = next(i for i in interop.built["multi"] if str(i.platform) == platform)
    dest = tmp_path / "rootfs"
    with pallet.Store(root=tmp_path / "s") as s:
        s.load(interop.archive("multi"))
        warnings: list[str] = []
        res = s.unpack(interop.name("multi"), dest, platform=platform, on_warning=warnings.append)
    assert res.digest == img.manifest.digest
    assert res.manifest.size == img.manifest.size
    assert res.diff_ids == tuple(str(d) for d in img.diff_ids)
    assert [ly.digest for ly in res.layers] == [ly.digest for ly in img.layers]
    assert res.warnings == tuple(warnings)
    assert tree_state(dest) == tree_state(interop.expected[platform])
    busybox = dest / "bin" / "busybox"
    if platform == "linux/amd64":
        assert busybox.read_bytes() == Path("/bin/busybox").read_bytes()
    assert (dest / "opt" / "app" / "config.txt").read_text() == f"platform {platform}\n"


def test_bad_input_names_the_value(interop: Interop, tmp_path: Path) -> None:
    with pallet.Store(root=tmp_path / "s") as s:
        missing = tmp_path / "nope.tar"
        with pytest.raises(pallet.NotFound, match=str(missing)):
            s.load(missing)
        with pytest.raises(pallet.InvalidArgument, match="archive"):
            s.load(io.BytesIO(b"not a tarball" * 100))
        with pytest.raises(pallet.InvalidArgument, match="archive source 42"):
            s.load(42)  # type: ignore[arg-type]
        text = tmp_path / "notes.txt"
        text.write_text("hello, not a tar archive at all " * 40)
        with pytest.raises(pallet.InvalidArgument) as not_tar:
            s.load(text)
        assert str(not_tar.value).startswith("archive: not a tar archive (")
        assert "hello" not in str(not_tar.value)
        with pytest.raises(pallet.InvalidArgument, match="archive source .*: a text stream"):
            s.load(io.StringIO("x"))  # type: ignore[arg-type]
        # a failed load keeps nothing: the image is not there to save
        with pytest.raises(pallet.NotFound, match="example.com/interop/oci:v1"):
            s.save(["example.com/interop/oci:v1"], io.BytesIO())

        s.load(interop.archive("oci"))
        name = interop.name("oci")
        with pytest.raises(pallet.NotFound, match="image example.com/none:1"):
            s.save(["example.com/none:1"], io.BytesIO())
        with pytest.raises(pallet.InvalidArgument, match="'tar'"):
            s.save([name], io.BytesIO(), format="tar")
        with pytest.raises(pallet.InvalidArgument, match="no image"):
            s.save([], io.BytesIO())
        with pytest.raises(pallet.InvalidArgument, match="platform 'linux'"):
            s.save([name], io.BytesIO(), platform="linux")
        with pytest.raises(pallet.InvalidArgument, match="archive destination .*: a text stream"):
            s.save([name], io.StringIO())  # type: ignore[arg-type]

        class Full(io.RawIOBase):
            name = "full-disk"

            def writable(self) -> bool:
                return True

            def write(self, b: object) -> int:
                raise OSError(28, "No space left on device")

        with pytest.raises(
            pallet.FailedPrecondition,
            match="archive destination full-disk: No space left on device",
        ):
            s.save([name], Full())  # type: ignore[arg-type]
        with pytest.raises(pallet.InvalidArgument, match="unpack destination 5: want a directory"):
            s.unpack(name, 5)  # type: ignore[arg-type]
        gone = tmp_path / "no-such-dir" / "x.tar"
        with pytest.raises(pallet.NotFound, match=str(gone)):
            s.save([name], gone)
        assert not gone.parent.exists()

        with pytest.raises(pallet.NotFound, match="image example.com/none:1"):
            s.unpack("example.com/none:1", tmp_path / "d1")
        full = tmp_path / "full"
        full.mkdir()
        (full / "x").write_text("x")
        with pytest.raises(pallet.InvalidArgument, match=f"{full}: not empty"):
            s.unpack(name, full)
        s.load(interop.archive("multi"))
        with pytest.raises(pallet.NotFound, match="linux/s390x"):
            s.unpack(interop.name("multi"), tmp_path / "d2", platform="linux/s390x")
        assert not (tmp_path / "d2").exists()
        with pytest.raises(pallet.InvalidArgument, match="platform 'linux'"):
            s.unpack(name, tmp_path / "d3", platform="linux")


def test_archives_on_containerd(ctrd: Containerd, interop: Interop, tmp_path: Path) -> None:
    """The same calls on a containerd store: load into the daemon, unpack and save from it;
    none of them opens an embedded store."""
    name = interop.name("oci")
    root = interop.roots["oci"]
    with pallet.Store.containerd(ctrd.socket, new_namespace("api-archive")) as s:
        assert [i.digest for i in s.load(interop.archive("oci"))] == [root.digest]
        res = s.unpack(name, tmp_path / "rootfs", platform="linux/amd64")
        assert res.digest == root.digest
        assert tree_state(tmp_path / "rootfs") == tree_state(interop.expected["linux/amd64"])
        buf = io.BytesIO()
        s.save([name], buf)
    assert buf.getvalue() == interop.archive("oci").read_bytes()
    # a second namespace of the same daemon: containerd shares the blobs between namespaces,
    # and the archive's copy of each is still read and checked
    with pallet.Store.containerd(ctrd.socket, new_namespace("api-archive")) as s:
        assert [i.digest for i in s.load(io.BytesIO(buf.getvalue()))] == [root.digest]
        with pytest.raises(pallet.DigestMismatch):
            s.load(io.BytesIO(_corrupt(buf.getvalue())), tag="example.com/bad:1")
    assert not (tmp_path / "xdg").exists()
