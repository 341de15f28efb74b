"""The sans-IO flows, fed canned responses: exact request sequences, no sockets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pallet.errors import DigestMismatch, InvalidArgument
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.remote.errors import RegistryError, redact_url
from pallet.remote.protocol import (
    BlobSink,
    BodyRange,
    ConnectionLost,
    Flow,
    Headers,
    PushOutcome,
    Request,
    Response,
    RetryPolicy,
    Sleep,
    Trouble,
    fetch_blob,
    get_manifest,
    parse_range,
    parse_retry_after,
    push_manifest,
    upload_blob,
)

BASE = "http://reg"
POLICY = RetryPolicy(attempts=4, initial=0.01, jitter=0)
KiB = 1 << 10


def blob(size: int) -> tuple[Descriptor, bytes]:
    data = bytes(i % 251 for i in range(size))
    d = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    return Descriptor(media_type=mt.OCI_LAYER, digest=d, size=size), data


def source(data: bytes) -> Callable[[int, int], Iterator[bytes]]:
    def read(offset: int, length: int) -> Iterator[bytes]:
        yield data[offset : offset + length]

    return read


Handler = Callable[[Request], Response | Exception]


def r(
    status: int,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    req: Request | None = None,
) -> Response:
    return Response(
        method=req.method if req else "",
        url=req.url if req else "",
        status=status,
        headers=Headers((headers or {}).items()),
        body=body,
    )


def drive(flow: Flow[Any], handler: Handler) -> tuple[Any, list[str], list[Request]]:
    """Run a flow; returns (result, ["METHOD path?query" | "sleep"], requests)."""
    log: list[str] = []
    reqs: list[Request] = []
    step = next(flow)
    try:
        while True:
            if isinstance(step, Sleep):
                log.append("sleep")
                step = flow.send(r(0))
                continue
            reqs.append(step)
            log.append(f"{step.method} {step.url.removeprefix(BASE)}")
            res = handler(step)
            if isinstance(res, Exception):
                step = flow.throw(res)
            else:
                step = flow.send(
                    Response(
                        method=step.method,
                        url=step.url,
                        status=res.status,
                        headers=res.headers,
                        body=res.body,
                    )
                )
    except StopIteration as stop:
        return stop.value, log, reqs


def test_head_mount_202_patch_put_sequence() -> None:
    """Chunks double up to the maximum; the last one goes with the closing PUT."""
    desc, data = blob(800 * KiB)
    seen: list[bytes] = []

    def handler(req: Request) -> Response:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            return r(202, {"Location": "/v2/app/blobs/uploads/u1?_state=a"})
        if req.method == "PATCH":
            assert isinstance(req.body, BodyRange)
            chunk = b"".join(req.body.chunks())
            seen.append(chunk)
            end = sum(len(c) for c in seen) - 1
            return r(
                202, {"Location": f"/v2/app/blobs/uploads/u1?_state=s{end}", "Range": f"0-{end}"}
            )
        if req.method == "PUT":
            assert isinstance(req.body, BodyRange)
            seen.append(b"".join(req.body.chunks()))
            return r(201, {"Docker-Content-Digest": desc.digest})
        raise AssertionError(req.method)

    flow = upload_blob(
        BASE, "app", desc, source(data), mount_from=["base/img"], chunk_size=128 * KiB,
        chunk_max=256 * KiB, monolithic_max=0, policy=POLICY,
    )  # fmt: skip
    out, log, reqs = drive(flow, handler)
    assert out is PushOutcome.UPLOADED
    assert log == [
        f"HEAD /v2/app/blobs/{desc.digest}",
        f"POST /v2/app/blobs/uploads/?mount={desc.digest}&from=base%2Fimg",
        "PATCH /v2/app/blobs/uploads/u1?_state=a",
        f"PATCH /v2/app/blobs/uploads/u1?_state=s{128 * KiB - 1}",
        f"PATCH /v2/app/blobs/uploads/u1?_state=s{384 * KiB - 1}",
        f"PUT /v2/app/blobs/uploads/u1?_state=s{640 * KiB - 1}&digest={desc.digest}",
    ]
    assert b"".join(seen) == data
    ranges = [q.headers["Content-Range"] for q in reqs if q.method in ("PATCH", "PUT")]
    assert ranges == ["0-131071", "131072-393215", "393216-655359", "655360-819199"]
    assert all(q.headers["Content-Type"] == "application/octet-stream" for q in reqs[2:])


def test_mount_201_and_exists() -> None:
    desc, data = blob(10)
    out, log, _ = drive(
        upload_blob(BASE, "app", desc, source(data), mount_from=["app", "lib/x"]),
        lambda q: r(404) if q.method == "HEAD" else r(201),
    )
    assert out is PushOutcome.MOUNTED
    assert [x.split("?")[0] for x in log] == [
        f"HEAD /v2/app/blobs/{desc.digest}",
        "POST /v2/app/blobs/uploads/",
    ]
    assert "from=lib%2Fx" in log[1]  # the target repository itself is never a source
    out, log, _ = drive(upload_blob(BASE, "app", desc, source(data)), lambda q: r(200))
    assert out is PushOutcome.EXISTS and len(log) == 1


def test_mount_refused_falls_back_to_a_plain_upload() -> None:
    desc, data = blob(1000)

    def handler(req: Request) -> Response:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST" and "mount=" in req.url:
            return r(401, {"WWW-Authenticate": 'Bearer realm="x"'})
        if req.method == "POST":
            return r(202, {"Location": "http://other-host/upload/1"})  # absolute, another server
        if req.method == "PUT":
            assert b"".join(req.body.chunks()) == data  # type: ignore[union-attr]
            return r(201)
        raise AssertionError(req)

    out, log, _ = drive(upload_blob(BASE, "app", desc, source(data), mount_from=["lib"]), handler)
    assert out is PushOutcome.UPLOADED
    assert log[1].startswith("POST /v2/app/blobs/uploads/?mount=")
    assert log[2] == "POST /v2/app/blobs/uploads/"
    assert log[3] == f"PUT http://other-host/upload/1?digest={desc.digest}"


def test_202_without_location_is_an_error() -> None:
    desc, data = blob(10)
    with pytest.raises(RegistryError, match="202 without a Location"):
        drive(
            upload_blob(BASE, "app", desc, source(data)),
            lambda q: r(404) if q.method == "HEAD" else r(202),
        )


def test_resume_after_dropped_connection_uses_the_registry_range() -> None:
    desc, data = blob(400 * KiB)
    got = bytearray()
    state = {"patches": 0}

    def handler(req: Request) -> Response | Exception:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            return r(202, {"Location": "/up"})
        if req.method == "PATCH":
            state["patches"] += 1
            chunk = b"".join(req.body.chunks())  # type: ignore[union-attr]
            start = int(req.headers["Content-Range"].split("-")[0])
            assert start == len(got)
            if state["patches"] == 2:
                got.extend(chunk[:50000])  # the registry kept part of it
                return ConnectionLost("reset by peer")
            got.extend(chunk)
            return r(202, {"Location": "/up", "Range": f"0-{len(got) - 1}"})
        if req.method == "GET":
            return r(204, {"Location": "/up", "Range": f"0-{len(got) - 1}"})
        if req.method == "PUT":
            got.extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
            return r(201)
        raise AssertionError(req)

    flow = upload_blob(
        BASE, "app", desc, source(data), chunk_size=128 * KiB, chunk_max=128 * KiB,
        monolithic_max=0, policy=POLICY,
    )  # fmt: skip
    out, log, reqs = drive(flow, handler)
    assert out is PushOutcome.UPLOADED and bytes(got) == data
    assert log[4:6] == ["sleep", "GET /up"]
    ranges = [q.headers["Content-Range"] for q in reqs if q.method in ("PATCH", "PUT")]
    # from where the registry is, the rest (less than two chunks) in the closing PUT
    assert ranges[2] == f"{128 * KiB + 50000}-{400 * KiB - 1}"


def test_chunk_min_length_is_honoured_and_416_recovers() -> None:
    desc, data = blob(900 * KiB)
    got = bytearray()
    fail = {"once": True}

    def handler(req: Request) -> Response:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            return r(202, {"Location": "/up", "OCI-Chunk-Min-Length": str(256 * KiB)})
        if req.method == "PATCH":
            if len(got) and fail["once"]:
                fail["once"] = False
                return r(416)
            got.extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
            return r(202, {"Location": "/up", "Range": f"0-{len(got) - 1}"})
        if req.method == "GET":
            return r(204, {"Range": f"0-{len(got) - 1}"})
        got.extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
        return r(201)

    # the maximum below the registry's minimum: every chunk is the minimum
    flow = upload_blob(
        BASE, "app", desc, source(data), chunk_size=64 * KiB, chunk_max=64 * KiB,
        monolithic_max=0, policy=POLICY,
    )  # fmt: skip
    out, log, reqs = drive(flow, handler)
    assert out is PushOutcome.UPLOADED and bytes(got) == data
    sizes = [q.content_length for q in reqs if q.method in ("PATCH", "PUT")]
    assert sizes == [256 * KiB, 256 * KiB, 256 * KiB, 388 * KiB]  # the second one: 416
    assert "GET /up" in log


def test_lost_session_restarts_the_blob_and_cancels_the_old_one() -> None:
    desc, data = blob(300 * KiB)
    sessions = iter(["/s1", "/s2"])
    got: dict[str, bytearray] = {}

    def handler(req: Request) -> Response | Exception:
        path = req.url.removeprefix(BASE)
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            loc = next(sessions)
            got[loc] = bytearray()
            return r(202, {"Location": loc})
        if req.method in ("PATCH", "PUT") and path.split("?")[0] == "/s1" and got["/s1"]:
            return ConnectionLost("reset")
        if req.method == "PATCH":
            got[path].extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
            return r(202, {"Location": path, "Range": f"0-{len(got[path]) - 1}"})
        if req.method == "GET":
            body = json.dumps(
                {"errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "x"}]}
            ).encode()
            return r(400, body=body)
        if req.method == "DELETE":
            return r(204)
        got[path.split("?")[0]].extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
        return r(201)

    flow = upload_blob(
        BASE, "app", desc, source(data), chunk_size=128 * KiB, chunk_max=128 * KiB,
        monolithic_max=0, policy=POLICY,
    )  # fmt: skip
    out, log, _ = drive(flow, handler)
    assert out is PushOutcome.UPLOADED and bytes(got["/s2"]) == data
    i = log.index("DELETE /s1")
    assert log[i + 1 : i + 4] == [
        "sleep",
        f"HEAD /v2/app/blobs/{desc.digest}",
        "POST /v2/app/blobs/uploads/",
    ]


def test_digest_mismatch_and_no_upload_when_absent() -> None:
    desc, data = blob(100)
    with pytest.raises(DigestMismatch, match="registry stored digest"):
        drive(
            upload_blob(BASE, "app", desc, source(data)),
            lambda q: {"HEAD": r(404), "POST": r(202, {"Location": "/u"})}.get(
                q.method, r(201, {"Docker-Content-Digest": "sha256:" + "0" * 64})
            ),
        )
    from pallet.errors import FailedPrecondition

    with pytest.raises(FailedPrecondition, match="not mountable"):
        drive(
            upload_blob(BASE, "app", desc, source(data), mount_from=["lib"], allow_upload=False),
            lambda q: r(404) if q.method == "HEAD" else r(202, {"Location": "/u"}),
        )


def _manifest() -> tuple[Descriptor, bytes]:
    data = json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}, "layers": []}
    ).encode()
    d = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    return Descriptor(media_type=mt.OCI_MANIFEST, digest=d, size=len(data)), data


def test_manifest_put_content_type_and_checks() -> None:
    desc, data = _manifest()
    out, log, reqs = drive(
        push_manifest(BASE, "app", desc, data, tag="v1"),
        lambda q: r(404) if q.method == "HEAD" else r(201, {"Docker-Content-Digest": desc.digest}),
    )
    assert out is PushOutcome.UPLOADED
    assert log == ["HEAD /v2/app/manifests/v1", "PUT /v2/app/manifests/v1"]
    assert reqs[1].headers["Content-Type"] == mt.OCI_MANIFEST and reqs[1].body == data
    out, log, _ = drive(
        push_manifest(BASE, "app", desc, data),
        lambda q: r(200, {"Docker-Content-Digest": desc.digest}),
    )
    assert out is PushOutcome.EXISTS and log == [f"HEAD /v2/app/manifests/{desc.digest}"]
    wrong = Descriptor(media_type=mt.DOCKER_MANIFEST, digest=desc.digest, size=desc.size)
    with pytest.raises(InvalidArgument, match="differs from descriptor"):
        drive(push_manifest(BASE, "app", wrong, data), lambda q: r(404))
    with pytest.raises(DigestMismatch):
        drive(
            push_manifest(BASE, "app", desc, data, check_exists=False),
            lambda q: r(201, {"Docker-Content-Digest": "sha256:" + "1" * 64}),
        )


def test_get_manifest_verifies_digest() -> None:
    desc, data = _manifest()
    (got, body), _, reqs = drive(
        get_manifest(BASE, "app", "v1"),
        lambda q: r(
            200, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": desc.digest}, data
        ),
    )
    assert got == desc and body == data and mt.OCI_INDEX in reqs[0].headers["Accept"]
    with pytest.raises(DigestMismatch):
        drive(get_manifest(BASE, "app", str(desc.digest)), lambda q: r(200, {}, data + b" "))


def test_fetch_blob_resumes_with_range_and_handles_ignored_range() -> None:
    desc, data = blob(5000)
    out = bytearray()
    sink = BlobSink(out.extend, out.clear)
    calls: list[str] = []

    def handler(req: Request) -> Response | Exception:
        rng = req.headers.get("Range", "")
        calls.append(rng)
        assert req.stream is not None
        if not rng:
            w = req.stream(200, Headers())
            assert w is not None
            w(data[:2000])
            return ConnectionLost("cut")
        if len(calls) == 2:  # a server that ignores Range
            w = req.stream(200, Headers())
            assert w is not None
            w(data[:3000])
            return ConnectionLost("cut again")
        start = int(rng.split("=")[1].rstrip("-"))
        w = req.stream(206, Headers([("Content-Range", f"bytes {start}-4999/5000")]))
        assert w is not None
        w(data[start:])
        return r(206)

    _, log, _ = drive(fetch_blob(BASE, "app", desc, sink, policy=POLICY), handler)
    assert bytes(out) == data
    assert calls == ["", "bytes=2000-", "bytes=3000-"]
    assert log.count("sleep") == 2


def test_helpers() -> None:
    assert parse_range("0-1023") == (0, 1023) and parse_range("bytes=5-9") == (5, 9)
    assert parse_range("garbage") is None and parse_range(None) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert RetryPolicy(initial=1, factor=2, jitter=0, max_delay=5).delay(4) == 5
    assert RetryPolicy().delay(1, 3.0) == 3.0
    url = "https://u:p@s3.example/b?X-Amz-Signature=abc&digest=sha256:1&_state=xyz"
    red = redact_url(url)
    assert "abc" not in red and "xyz" not in red and "u:p" not in red and "digest=sha256:1" in red


def test_mount_202_tries_the_next_source_before_uploading() -> None:
    desc, data = blob(100)

    def handler(req: Request) -> Response:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST" and "from=first" in req.url:
            return r(202, {"Location": "/s1"})
        if req.method == "POST" and "from=second" in req.url:
            return r(201)
        if req.method == "DELETE":
            return r(204)
        raise AssertionError(req)

    flow = upload_blob(BASE, "app", desc, source(data), mount_from=["first", "second"])
    out, log, _ = drive(flow, handler)
    assert out is PushOutcome.MOUNTED
    assert [x.split("?")[0] for x in log[1:]] == [
        "POST /v2/app/blobs/uploads/",
        "DELETE /s1",
        "POST /v2/app/blobs/uploads/",
    ]


def _chunk_registry(got: bytearray, drop: Callable[[Request], bool] = lambda q: False) -> Handler:
    """An upload endpoint behind a buffering proxy: a request that ``drop`` picks is lost whole
    (nothing of it reaches the registry); the rest append to ``got``."""

    def handler(req: Request) -> Response | Exception:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            return r(202, {"Location": "/up"})
        if req.method == "GET":
            return r(204, {"Location": "/up", "Range": f"0-{max(0, len(got) - 1)}"})
        if drop(req):
            return ConnectionLost("reset by peer")
        if req.body is not None:
            start = int(req.headers["Content-Range"].split("-")[0])
            assert start == len(got)
            got.extend(b"".join(req.body.chunks()))  # type: ignore[union-attr]
        if req.method == "PATCH":
            return r(202, {"Location": "/up", "Range": f"0-{len(got) - 1}"})
        assert req.method == "PUT" and "digest=" in req.url
        return r(201)

    return handler


def test_default_sizes_one_put_up_to_16_mib_then_growing_chunks() -> None:
    from pallet.remote.options import (
        DEFAULT_CHUNK,
        DEFAULT_CHUNK_MAX,
        DEFAULT_MONOLITHIC,
        Options,
    )

    MiB = 1 << 20
    o = Options()
    assert (o.chunk_size, o.chunk_max, o.monolithic_max) == (
        DEFAULT_CHUNK,
        DEFAULT_CHUNK_MAX,
        DEFAULT_MONOLITHIC,
    )
    assert DEFAULT_MONOLITHIC == DEFAULT_CHUNK == 16 << 20
    assert DEFAULT_CHUNK_MAX == 128 << 20

    def zeros(offset: int, length: int) -> Iterator[bytes]:
        yield bytes(length)

    def handler(req: Request) -> Response:
        if req.method == "HEAD":
            return r(404)
        if req.method == "POST":
            return r(202, {"Location": "/v2/app/blobs/uploads/u1"})
        if req.method == "PATCH":
            end = req.headers["Content-Range"].split("-")[1]
            return r(202, {"Location": "/v2/app/blobs/uploads/u1", "Range": f"0-{end}"})
        return r(201)

    digest = Digest("sha256:" + "0" * 64)
    for size, want in (
        (16 * MiB, [16]),
        (20 * MiB, [16, 4]),
        (40 * MiB, [16, 24]),
        (50 * MiB, [16, 34]),  # a tail under 16 MiB rides with the last chunk
        (79 * MiB, [16, 32, 31]),
        (367 * MiB, [16, 32, 64, 128, 127]),
        (500 * MiB, [16, 32, 64, 128, 128, 132]),
    ):
        desc = Descriptor(media_type=mt.OCI_LAYER, digest=digest, size=size)
        # the flow's own defaults are the Options' defaults
        for flow in (
            upload_blob(BASE, "app", desc, zeros),
            upload_blob(
                BASE, "app", desc, zeros, chunk_size=o.chunk_size, chunk_max=o.chunk_max,
                monolithic_max=o.monolithic_max,
            ),
        ):  # fmt: skip
            out, log, reqs = drive(flow, handler)
            assert out is PushOutcome.UPLOADED
            assert [x.split()[0] for x in log] == [
                "HEAD",
                "POST",
                *["PATCH"] * (len(want) - 1),
                "PUT",
            ]
            assert [q.content_length for q in reqs[2:]] == [n * MiB for n in want]
            if len(want) > 1:  # the closing PUT carries the last chunk and says where it goes
                assert reqs[-1].headers["Content-Range"] == f"{size - want[-1] * MiB}-{size - 1}"


def test_a_failed_chunk_keeps_every_later_chunk_of_the_run_small() -> None:
    """A drop costs the request it hits; after one, chunks stop growing, for this blob and for
    every other upload that shares the run's Trouble."""
    desc, data = blob(1000 * KiB)
    got = bytearray()
    trouble = Trouble()
    lost: list[int] = []

    def drop(req: Request) -> bool:
        if not lost and req.content_length == 256 * KiB:
            lost.append(len(got))
            return True
        return False

    sizes = {"chunk_size": 64 * KiB, "chunk_max": 512 * KiB, "monolithic_max": 0}
    flow = upload_blob(BASE, "app", desc, source(data), policy=POLICY, trouble=trouble, **sizes)  # type: ignore[arg-type]
    out, log, reqs = drive(flow, _chunk_registry(got, drop))
    assert out is PushOutcome.UPLOADED and bytes(got) == data
    assert lost == [192 * KiB] and trouble.seen
    sent = [q.content_length for q in reqs if q.method in ("PATCH", "PUT")]
    # 64, 128, 256 (lost at 192 KiB); then the registry's Range, and 64 KiB chunks to the end
    assert sent == [64 * KiB, 128 * KiB, 256 * KiB] + [64 * KiB] * 11 + [104 * KiB]
    assert log[5:7] == ["sleep", "GET /up"]

    other, other_data = blob(300 * KiB)
    got2 = bytearray()
    flow = upload_blob(
        BASE, "app", other, source(other_data), policy=POLICY, trouble=trouble, **sizes
    )  # type: ignore[arg-type]
    out, _, reqs = drive(flow, _chunk_registry(got2))
    assert out is PushOutcome.UPLOADED and bytes(got2) == other_data
    assert [q.content_length for q in reqs[2:]] == [64 * KiB] * 3 + [108 * KiB]


def test_a_dropped_closing_put_resumes_from_the_registry_range() -> None:
    """40 units, a first chunk of 16, a drop in the closing PUT (which carries the last 24):
    the 24 again, not the 40."""
    unit = 4 * KiB
    desc, data = blob(40 * unit)
    got = bytearray()
    first_put = {"armed": True}

    def drop(req: Request) -> bool:
        if req.method == "PUT" and first_put["armed"]:
            first_put["armed"] = False
            return True
        return False

    flow = upload_blob(
        BASE, "app", desc, source(data), chunk_size=16 * unit, monolithic_max=16 * unit,
        policy=POLICY,
    )  # fmt: skip
    out, log, reqs = drive(flow, _chunk_registry(got, drop))
    assert out is PushOutcome.UPLOADED and bytes(got) == data
    assert [x.split("?")[0] for x in log[2:]] == [
        "PATCH /up",
        "PUT /up",
        "sleep",
        "GET /up",
        "PUT /up",
    ]
    ranges = [q.headers["Content-Range"] for q in reqs if q.method in ("PATCH", "PUT")]
    # 0-16 accepted, 16-40 lost, then from 16 again
    assert ranges == [f"0-{16 * unit - 1}"] + [f"{16 * unit}-{40 * unit - 1}"] * 2


def test_a_closing_put_that_arrived_without_an_answer_finds_the_blob() -> None:
    desc, data = blob(300 * KiB)
    stored: list[bytes] = []

    def handler(req: Request) -> Response | Exception:
        if req.method == "HEAD":
            return r(200) if stored else r(404)
        if req.method == "POST":
            return r(202, {"Location": "/up"})
        if req.method == "PATCH":
            return r(202, {"Location": "/up", "Range": f"0-{128 * KiB - 1}"})
        if req.method == "PUT":
            stored.append(b"done")
            return ConnectionLost("reset after the body")
        if req.method == "GET":  # the session is gone with the commit
            body = json.dumps({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN", "message": "x"}]})
            return r(404, body=body.encode())
        if req.method == "DELETE":
            return r(404)
        raise AssertionError(req)

    flow = upload_blob(
        BASE, "app", desc, source(data), chunk_size=128 * KiB, monolithic_max=0, policy=POLICY
    )
    out, log, _ = drive(flow, handler)
    assert out is PushOutcome.EXISTS
    assert [x.split("?")[0].split()[0] for x in log[-4:]] == ["GET", "DELETE", "sleep", "HEAD"]
