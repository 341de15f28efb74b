"""``progress_session``: one renderer per job, closed with the job's outcome."""

from __future__ import annotations

import pytest

from pallet.cli.progress import progress_session
from pallet.errors import NotFound
from pallet.progress import Progress


def test_a_session_ends_with_done_or_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_session("plain", "pulling x") as r:
        r.write(Progress(id="resolving", started=1.0, completed=1.5))
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["#1 pulling x", "#1 resolving 0.5s done"]
    assert lines[2].startswith("#1 DONE ") and len(lines) == 3

    with pytest.raises(NotFound), progress_session("plain", "pushing y") as r:
        r.write(Progress(id="pushing layers"))
        raise NotFound("image y: not found")
    assert capsys.readouterr().err.splitlines() == [
        "#1 pushing y",
        "#1 pushing layers",
        "#1 ERROR: image y: not found",
    ]

    # an error without text is named by its type
    with pytest.raises(KeyboardInterrupt), progress_session("plain", "exporting") as r:
        r.write(Progress(id="exporting layers"))
        raise KeyboardInterrupt
    assert capsys.readouterr().err.splitlines()[-1] == "#1 ERROR: KeyboardInterrupt"


def test_a_session_that_wrote_nothing_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NotFound), progress_session("plain", "pulling x"):
        raise NotFound("nothing started")
    with progress_session("quiet", "pulling x") as r:
        r.write(Progress(id="resolving"))
    assert capsys.readouterr().err == ""


def test_steps_open_one_session_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    """A call that runs several steps (an export: resolving the base, then each output) shows
    each as its own session; a step that reported nothing prints nothing."""
    from pallet.cli.progress import progress_steps

    def step(vertex: str, *, done: bool = False, error: str = "") -> Progress:
        return Progress(id=vertex, vertex=vertex, completed=2.0 if done else None, error=error)

    with progress_steps("plain") as w:
        w.write(step("resolving b"))
        w.write(step("resolving b", done=True))  # nothing reported: nothing printed
        w.write(step("exporting to image"))
        w.write(Progress(id="exporting layers", vertex="exporting to image", started=1.0))
        w.write(step("exporting to image", done=True))
        w.write(step("exporting to oci image format"))
        w.write(Progress(id="sending tarball", vertex="exporting to oci image format"))
        w.write(step("exporting to oci image format", done=True, error="disk full"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["#1 exporting to image", "#1 exporting layers"]
    assert lines[2].startswith("#1 DONE ")
    assert lines[3:] == [
        "#1 exporting to oci image format",
        "#1 sending tarball",
        "#1 ERROR: disk full",
    ]

    # rawjson prints the events as for one job; an error still open closes the step
    with pytest.raises(NotFound), progress_steps("rawjson") as w:
        w.write(step("exporting to image"))
        w.write(Progress(id="exporting layers", vertex="exporting to image"))
        raise NotFound("gone")
    assert capsys.readouterr().err == '{"id": "exporting layers"}\n'
