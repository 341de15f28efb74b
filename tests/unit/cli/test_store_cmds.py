"""The store commands, run as a user runs them: a real process, real disk, exit codes, output."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.images import Image
from pallet.metadata.store import open_store
from support.images import build_index, random_image


def run(
    root: Path | None, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    e = dict(os.environ)
    e.update(env or {})
    argv = [sys.executable, "-m", "pallet.cli"]
    if root:
        argv += ["--root", str(root)]
    return subprocess.run([*argv, *args], input=input, capture_output=True, env=e, timeout=120)


def ok(p: subprocess.CompletedProcess[bytes]) -> str:
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_ingest_ls_cat_label_rm(tmp_path: Path) -> None:
    root = tmp_path / "s"
    data = os.urandom(5000)
    dg = "sha256:" + hashlib.sha256(data).hexdigest()
    assert ok(run(root, "content", "ingest", "r1", "--label", "a=b", input=data)).strip() == dg
    assert (root / "content" / "blobs" / "sha256" / dg[7:]).read_bytes() == data
    assert (root / "metadata.db").exists()
    out = json.loads(ok(run(root, "content", "ls", "--format", "json")))
    assert out == [
        {
            "digest": dg,
            "size": 5000,
            "labels": {"a": "b"},
            "created": out[0]["created"],
            "updated": out[0]["updated"],
        }
    ]
    assert ok(run(root, "content", "ls", "-q")).split() == [dg]
    assert run(root, "content", "cat", dg).stdout == data
    ok(run(root, "content", "label", dg, "a=", "c=d"))
    assert json.loads(ok(run(root, "content", "info", dg, "--format", "json")))["labels"] == {
        "c": "d"
    }
    assert ok(run(root, "content", "ls", "labels.c==d", "-q")).split() == [dg]
    ok(run(root, "content", "rm", dg))
    assert ok(run(root, "content", "ls", "-q")) == ""


def test_root_from_env_and_xdg(tmp_path: Path) -> None:
    ok(
        run(
            None,
            "content",
            "ingest",
            "r",
            input=b"x",
            env={"PALLET_ROOT": str(tmp_path / "envroot")},
        )
    )
    assert list((tmp_path / "envroot" / "content" / "blobs" / "sha256").iterdir())
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    e = dict(os.environ)
    e.pop("PALLET_ROOT", None)
    e.update(env)
    p = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "content", "ingest", "r"],
        input=b"y",
        capture_output=True,
        env=e,
    )
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "xdg" / "pallet" / "content" / "blobs" / "sha256").iterdir())


@pytest.mark.parametrize(
    "args,needle",
    [
        (["content", "info", "sha256:1234"], "sha256:1234"),
        (["content", "cat", "nodigest"], "nodigest"),
        (["content", "label", "sha256:" + "a" * 64, "novalue"], "novalue"),
        (["content", "ingest", "r", "--expected-digest", "md5:00"], "md5:00"),
        (["content", "ls", 'labels."open'], 'labels."open'),
        (["images", "ls", "name~=("], "name~=("),
        (["leases", "create", "--expires", "soon"], "soon"),
        (["content", "ingest", ""], "ref"),
        (["images", "tag", "missing", "x"], "missing"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_one_line_no_traceback(tmp_path: Path, args: list[str], needle: str) -> None:
    root = tmp_path / "s"
    p = run(root, *args, input=b"")
    err = p.stderr.decode()
    assert p.returncode in (1, 2), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    # nothing was written
    blobs = root / "content" / "blobs" / "sha256"
    assert not blobs.exists() or list(blobs.iterdir()) == []


def test_invalid_values_exit_2(tmp_path: Path) -> None:
    assert run(tmp_path / "s", "content", "info", "sha256:zz").returncode == 2
    assert run(tmp_path / "s", "images", "ls", "name~=(").returncode == 2


def test_images_tag_ls_inspect_rm_gc(tmp_path: Path) -> None:
    root = tmp_path / "s"
    db = open_store(root)
    m = random_image(db, 7).manifest
    db.images.create(Image(name="example.com/a:1", target=m))
    db.close()
    ok(run(root, "images", "tag", "example.com/a:1", "example.com/a:2"))
    names = ok(run(root, "images", "ls", "-q")).split()
    assert names == ["example.com/a:1", "example.com/a:2"]
    text = ok(run(root, "images", "ls"))
    assert "REF" in text and str(m.digest) in text
    ins = json.loads(ok(run(root, "images", "inspect", "example.com/a:2")))
    assert ins["target"]["digest"] == m.digest and len(ins["graph"]) == 4
    ok(run(root, "images", "rm", "example.com/a:1"))
    assert len(ok(run(root, "content", "ls", "-q")).split()) == 4  # still named as a:2
    ok(run(root, "images", "rm", "example.com/a:2"))
    assert ok(run(root, "content", "ls", "-q")) == ""


def test_images_ls_size_is_everything_the_image_references(tmp_path: Path) -> None:
    """SIZE (and ``size`` in JSON) counts every blob an image references once, every platform
    of an index, and a child the store lacks by its descriptor; ``root_size`` is the root's own
    size, as ``target.size``."""
    root = tmp_path / "s"
    db = open_store(root)
    shared = random.Random(3).randbytes(2000)
    amd = random_image(db, 1, sizes=(3 << 20,), shared=[shared], platform="linux/amd64")
    arm = random_image(db, 2, sizes=(1000,), shared=[shared], platform="linux/arm64")
    s390 = random_image(db, 4, sizes=(5000,), platform="linux/s390x")
    index = build_index(db, [amd, arm, s390])
    db.images.create(Image(name="example.com/multi:1", target=index))
    db.images.create(Image(name="example.com/single:1", target=amd.manifest))
    # s390x was never pulled: its manifest (so its config and layer) is not in the store
    db.content.delete(s390.manifest.digest)
    db.close()
    single = amd.manifest.size + amd.config.size + (3 << 20) + 2000
    multi = single + index.size + arm.manifest.size + arm.config.size + 1000 + s390.manifest.size
    out = {i["name"]: i for i in json.loads(ok(run(root, "images", "ls", "--format", "json")))}
    assert (out["example.com/single:1"]["size"], out["example.com/multi:1"]["size"]) == (
        single,
        multi,
    )
    assert out["example.com/multi:1"]["root_size"] == index.size
    assert out["example.com/multi:1"]["target"]["size"] == index.size
    assert out["example.com/single:1"]["root_size"] == amd.manifest.size
    rows = {r.split()[0]: r.split() for r in ok(run(root, "images", "ls")).splitlines()[1:]}
    assert rows["example.com/single:1"][-2:] == [f"{single / (1 << 20):.1f}", "MiB"]
    assert rows["example.com/multi:1"][-2:] == [f"{multi / (1 << 20):.1f}", "MiB"]
    assert "every platform" in ok(run(root, "images", "ls", "--help"))


def test_images_rm_no_gc_keeps_the_blobs(tmp_path: Path) -> None:
    root = tmp_path / "s"
    db = open_store(root)
    db.images.create(Image(name="example.com/a:1", target=random_image(db, 8).manifest))
    db.close()
    ok(run(root, "images", "rm", "--no-gc", "example.com/a:1"))
    assert len(ok(run(root, "content", "ls", "-q")).split()) == 4
    ok(run(root, "gc"))
    assert ok(run(root, "content", "ls", "-q")) == ""


def test_images_rm_asks_the_backend_to_collect_on_the_last_delete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ``images rm`` asks of the store it opened (containerd or embedded): delete every
    name, the last one with ``sync`` unless ``--no-gc``, and close the store, also on error."""
    from typing import Any, cast

    from pallet import _backend
    from pallet.cli.main import main
    from pallet.errors import NotFound

    calls: list[tuple[str, bool]] = []
    closed: list[bool] = []

    class Images:
        def delete(self, name: str, *, sync: bool = False) -> None:
            if name in ("missing", "docker.io/library/missing:latest"):
                raise NotFound(f"image {name}: not found")
            calls.append((name, sync))

    def fake_open(address: str | None, namespace: str | None, **kw: Any) -> _backend.Backend:
        assert address == "/nowhere.sock" and namespace == "ns1"
        return _backend.Backend(
            content=cast(Any, None),
            images=cast(Any, Images()),
            leases=cast(Any, None),
            kind="containerd",
            _close=[lambda: closed.append(True)],
        )

    monkeypatch.setattr(_backend, "open_containerd", fake_open)
    conn = ["--containerd=/nowhere.sock", "--namespace", "ns1"]
    assert main(["images", "rm", "a", "b", *conn]) == 0
    assert calls == [("a", False), ("b", True)] and closed == [True]
    assert capsys.readouterr().out.split() == ["a", "b"]
    calls.clear()
    assert main(["images", "rm", "a", "b", "--no-gc", *conn]) == 0
    assert calls == [("a", False), ("b", False)] and closed == [True, True]
    calls.clear()
    assert main(["images", "rm", "missing", "b", *conn]) == 1
    assert calls == [] and closed == [True, True, True]
    assert capsys.readouterr().err == "pallet: error: image missing: not found\n"


def test_leases_cli(tmp_path: Path) -> None:
    root = tmp_path / "s"
    lid = ok(run(root, "leases", "create", "--id", "mine", "--expires", "1h")).strip()
    assert lid == "mine"
    out = json.loads(ok(run(root, "leases", "ls", "--format", "json")))
    assert out[0]["id"] == "mine" and "containerd.io/gc.expire" in out[0]["labels"]
    ok(run(root, "leases", "rm", "mine"))
    assert json.loads(ok(run(root, "leases", "ls", "--format", "json"))) == []


def test_gc_cli(tmp_path: Path) -> None:
    root = tmp_path / "s"
    ok(run(root, "content", "ingest", "r", input=b"garbage"))
    out = json.loads(ok(run(root, "gc", "--format", "json")))
    assert out["blobs"] == ["sha256:" + hashlib.sha256(b"garbage").hexdigest()]
    assert out["bytes"] == 7


def test_fsck_finds_and_repairs_corruption(tmp_path: Path) -> None:
    root = tmp_path / "s"
    db = open_store(root)
    m = random_image(db, 9).manifest
    db.images.create(Image(name="img", target=m))
    good = db.content.blob_path(m.digest)
    from support.images import graph

    layer = sorted(graph(db, m) - {m.digest})[0]
    db.close()
    assert "0 problems" in ok(run(root, "fsck"))
    bad = root / "content" / "blobs" / "sha256" / layer[7:]
    os.chmod(bad, 0o644)
    bad.write_bytes(b"bit rot")
    p = run(root, "fsck")
    assert p.returncode == 1
    lines = p.stdout.decode().splitlines()
    assert any(line.startswith(f"blob {layer}: content hashes to") for line in lines)
    assert any(line.startswith("image img: missing") and layer in line for line in lines)
    p = run(root, "fsck", "--repair")
    assert "(repaired)" in p.stdout.decode()
    assert not bad.exists() and good.exists()  # only the untrusted blob went
    p = run(root, "fsck")
    assert p.returncode == 1 and "image img: missing" in p.stdout.decode()


def test_help_is_fast_and_lists_commands(tmp_path: Path) -> None:
    out = ok(run(None, "--help"))
    for cmd in ("content", "images", "leases", "gc", "fsck"):
        assert cmd in out
