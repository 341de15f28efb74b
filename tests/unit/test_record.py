"""pallet._record: slotted records that behave as ``@dataclass(slots=True)`` classes do."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from pallet._record import asdict, field, record, replace


@record(frozen=True, kw_only=True)
class Point:
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    secret: str = field(default="", repr=False)
    note: str = field(default="", compare=False)


@record(frozen=True, order=True)
class Version:
    major: int
    minor: int = 0


@record
class Box:
    items: list[int] = field(default_factory=list)
    name: str = "box"


def _both_constructors(make):  # type: ignore[no-untyped-def]
    """Results from the generic constructor (first instances) and the compiled one (later)."""
    first = [make() for _ in range(3)]
    for _ in range(20):
        make()
    return first, [make() for _ in range(3)]


def test_init_defaults_factories_and_errors_on_both_paths() -> None:
    for batch in _both_constructors(lambda: Point(x=1)):
        p = batch[0]
        assert (p.x, p.y, p.tags, p.secret, p.note) == (1, 0, {}, "", "")
        assert batch[0].tags is not batch[1].tags  # a fresh dict per instance
    for _ in range(2):  # generic, then (after enough instances above) compiled: same errors
        with pytest.raises(TypeError, match="x"):
            Point()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            Point(1)  # type: ignore[misc]
        with pytest.raises(TypeError, match="z"):
            Point(x=1, z=2)  # type: ignore[call-arg]
    v = [Version(1, 2) for _ in range(20)][-1]
    assert (v.major, v.minor) == (1, 2)
    assert Version(3).minor == 0
    assert Version(major=4, minor=5) == Version(4, 5)
    with pytest.raises(TypeError):
        Version(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Version.__init__(Version(9), 1, major=1)  # type: ignore[misc]


def test_frozen_records_refuse_assignment_like_dataclasses() -> None:
    p = Point(x=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.x  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]  # slotted: no __dict__
    assert not hasattr(p, "__dict__")
    b = Box()
    b.name = "changed"
    assert b.name == "changed"


def test_eq_hash_order_repr() -> None:
    assert Point(x=1, note="a") == Point(x=1, note="b")  # compare=False
    assert Point(x=1) != Point(x=2)
    assert Point(x=1).__eq__(Version(1)) is NotImplemented
    assert hash(Version(1, 2)) == hash(Version(1, 2)) == hash((1, 2))
    with pytest.raises(TypeError, match="dict"):
        hash(Point(x=1))  # a dict field, as with a frozen dataclass
    assert len({Version(1, 2), Version(1, 2), Version(2)}) == 2
    assert sorted([Version(2), Version(1, 5), Version(1, 2)]) == [
        Version(1, 2),
        Version(1, 5),
        Version(2),
    ]
    assert Version(1) < Version(1, 1) <= Version(1, 1) and Version(3) > Version(2, 9)
    with pytest.raises(TypeError):
        hash(Box())  # mutable with eq: unhashable, as a dataclass
    assert repr(Point(x=1, secret="pw")) == "Point(x=1, y=0, tags={}, note='')"
    assert "pw" not in repr(Point(x=1, secret="pw"))
    assert repr(Version(1, 2)) == "Version(major=1, minor=2)"


def test_dataclasses_api_sees_records() -> None:
    p = Point(x=1, tags={"a": "b"}, secret="s")
    assert dataclasses.is_dataclass(p)
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags", "secret", "note"]
    assert dataclasses.fields(Point)[3].repr is False
    q = dataclasses.replace(p, y=5)
    assert (q.x, q.y, q.tags, q.secret) == (1, 5, {"a": "b"}, "s")
    assert dataclasses.asdict(p) == {"x": 1, "y": 0, "tags": {"a": "b"}, "secret": "s", "note": ""}
    assert replace(p, x=7) == Point(x=7, tags={"a": "b"}, secret="s")
    assert asdict(Version(1, 2)) == {"major": 1, "minor": 2}
    with pytest.raises(TypeError):
        replace(p, nope=1)


def test_pickle_copy_and_match() -> None:
    p = Point(x=1, tags={"k": "v"})
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.deepcopy(p) == p and copy.deepcopy(p).tags is not p.tags
    assert copy.copy(Version(1, 2)) == Version(1, 2)
    match Version(1, 2):
        case Version(1, minor):
            assert minor == 2
        case _:
            pytest.fail("no match")


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="follows default"):

        @record
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="inherit"):

        @record
        class Child(Version):  # type: ignore[misc]
            patch: int = 0

    with pytest.raises(ValueError, match="both"):
        field(default=1, default_factory=int)  # type: ignore[call-overload]
