"""Slotted record classes: what ``@dataclass(slots=True)`` gives, built for start-up time.

Why not ``dataclasses`` itself: on CPython 3.11 ``@dataclass`` compiles five or six methods per
class with ``exec`` and builds the class twice for ``__slots__``: about 0.6-0.9 ms per class on
this project's machines, ~15 ms for the records a ``pallet push`` imports, while the whole push of
an image the registry already has takes ~25 ms in skopeo. ``@record`` builds the class once and
compiles nothing at import time:

* ``__eq__``, ``__hash__`` and the ordering methods compare ``operator.attrgetter`` tuples (C
  speed, no generated code); ``__repr__`` and the frozen ``__setattr__`` are shared functions;
* ``__init__`` starts generic (arguments bound by hand, a few microseconds a call); after a
  class's first 16 instances it is compiled (one ``exec``, the code ``dataclasses`` would write)
  and installed. Classes made a few times in a run compile nothing; hot ones get a specialised
  constructor.

The classes stay dataclasses to the outside world: ``dataclasses.fields``, ``replace``,
``asdict`` and ``is_dataclass`` work on them through a ``__dataclass_fields__`` mapping whose
``Field`` objects are made (importing ``dataclasses``) only when someone asks. Assigning to a
frozen record raises ``dataclasses.FrozenInstanceError``. Type checkers see the decorator
through :func:`typing.dataclass_transform`.

Supported: ``frozen``, ``kw_only``, ``eq``, ``order``; fields with a default, a
``default_factory``, ``repr=False`` or ``compare=False``; no inheritance between records, no
``__post_init__`` (nothing in pallet needs them; :func:`record` refuses a record base class).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar, dataclass_transform, overload

__all__ = ["MISSING", "asdict", "field", "record", "replace"]

T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: no default given
MISSING: Any = _Missing()


class _Field:
    __slots__ = ("compare", "default", "default_factory", "repr")

    def __init__(self, default: Any, default_factory: Any, repr: bool, compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare


@overload
def field(*, default: T, repr: bool = True, compare: bool = True) -> T: ...
@overload
def field(*, default_factory: Callable[[], T], repr: bool = True, compare: bool = True) -> T: ...
@overload
def field(*, repr: bool = True, compare: bool = True) -> Any: ...
def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A field's options, as :func:`dataclasses.field`."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, repr, compare)


class _Spec:
    """What @record learned about one class; kept on the class as ``__record__``."""

    __slots__ = ("annotations", "calls", "fields", "frozen", "kw_only", "module", "positional")

    def __init__(self, module: str, frozen: bool, kw_only: bool) -> None:
        self.module = module
        self.frozen = frozen
        self.kw_only = kw_only
        #: name -> (default, default_factory, repr, compare), in declaration order
        self.fields: dict[str, tuple[Any, Any, bool, bool]] = {}
        self.annotations: dict[str, Any] = {}
        self.positional: tuple[str, ...] = ()
        self.calls = 0


def _init_source(spec: _Spec) -> tuple[str, dict[str, Any]]:
    """The ``__init__`` dataclasses would write, and the globals it needs."""
    params: list[str] = []
    body: list[str] = []
    ns: dict[str, Any] = {"_HAS_FACTORY": _HAS_FACTORY}
    star = False
    for name, (default, factory, _, _) in spec.fields.items():
        if name not in spec.positional and not star:
            params.append("*")
            star = True
        if factory is not MISSING:
            ns[f"_f_{name}"] = factory
            params.append(f"{name}=_HAS_FACTORY")
            value = f"_f_{name}() if {name} is _HAS_FACTORY else {name}"
        elif default is not MISSING:
            ns[f"_d_{name}"] = default
            params.append(f"{name}=_d_{name}")
            value = name
        else:
            params.append(name)
            value = name
        if spec.frozen:
            body.append(f"    _setattr(self, {name!r}, {value})")
        else:
            body.append(f"    self.{name} = {value}")
    ns["_setattr"] = object.__setattr__
    src = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    return src, ns


class _HasFactory:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _HasFactory()


#: instantiations served by the generic constructor before a class gets a compiled one
_COMPILE_AFTER: Final = 16


def _first_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """The generic constructor: binds arguments by hand for a class's first few instances, then
    compiles the class's own ``__init__`` (one ``exec``), installs it and runs it."""
    cls = type(self)
    spec: _Spec = cls.__record__
    spec.calls += 1
    if spec.calls >= _COMPILE_AFTER:
        src, ns = _init_source(spec)
        exec(compile(src, f"<record {cls.__qualname__}.__init__>", "exec"), ns)
        init = ns["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        init.__module__ = spec.module
        cls.__init__ = init
        init(self, *args, **kwargs)
        return
    what = f"{cls.__qualname__}.__init__()"
    pos = spec.positional
    if len(args) > len(pos):
        raise TypeError(
            f"{what} takes {len(pos) + 1} positional arguments but {len(args) + 1} were given"
        )
    values = dict(zip(pos, args, strict=False))
    for k, v in kwargs.items():
        if k in values:
            raise TypeError(f"{what} got multiple values for argument {k!r}")
        if k not in spec.fields:
            raise TypeError(f"{what} got an unexpected keyword argument {k!r}")
        values[k] = v
    setattr_ = object.__setattr__
    for name, (default, factory, _, _) in spec.fields.items():
        if name in values:
            value = values[name]
        elif factory is not MISSING:
            value = factory()
        elif default is not MISSING:
            value = default
        else:
            raise TypeError(f"{what} missing 1 required argument: {name!r}")
        setattr_(self, name, value)


def _repr(self: Any) -> str:
    spec: _Spec = type(self).__record__
    parts = (f"{n}={getattr(self, n)!r}" for n, f in spec.fields.items() if f[2])
    return f"{type(self).__qualname__}({', '.join(parts)})"


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__record__.fields)


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for name, value in zip(type(self).__record__.fields, state, strict=True):
        object.__setattr__(self, name, value)


def _key_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda self: (one(self),)
    return operator.attrgetter(*names)


def _comparison(
    key: Callable[[Any], tuple[Any, ...]], op: Callable[[Any, Any], Any], name: str
) -> Callable[[Any, Any], Any]:
    """``__eq__``/``__lt__``/...: ``op`` over the field tuples of two instances of one class."""

    def method(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return op(key(self), key(other))
        return NotImplemented

    method.__name__ = method.__qualname__ = name
    return method


_ORDER: Final = {
    "__lt__": operator.lt,
    "__le__": operator.le,
    "__gt__": operator.gt,
    "__ge__": operator.ge,
}


def _comparisons(key: Callable[[Any], tuple[Any, ...]], order: bool) -> dict[str, Any]:
    ops = {"__eq__": operator.eq, **(_ORDER if order else {})}
    return {name: _comparison(key, op, name) for name, op in ops.items()}


class _DataclassFields(Mapping[str, Any]):
    """``__dataclass_fields__``: real :class:`dataclasses.Field` objects, made on first use."""

    __slots__ = ("_fields", "_spec")

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self._fields: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._fields is None:
            import dataclasses

            out: dict[str, Any] = {}
            for name, (default, factory, rep, cmp) in self._spec.fields.items():
                f: Any = dataclasses.field(
                    default=default if default is not MISSING else dataclasses.MISSING,
                    default_factory=factory if factory is not MISSING else dataclasses.MISSING,
                    repr=rep,
                    compare=cmp,
                    kw_only=name not in self._spec.positional,
                )
                f.name = name
                f.type = self._spec.annotations[name]
                f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
                out[name] = f
            self._fields = out
        return self._fields

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._spec.fields)

    def __len__(self) -> int:
        return len(self._spec.fields)


def _build(cls: type[T], frozen: bool, kw_only: bool, eq: bool, order: bool) -> type[T]:
    for base in cls.__mro__[1:]:
        if "__record__" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: records do not inherit from records")
    ns = dict(cls.__dict__)
    spec = _Spec(cls.__module__, frozen, kw_only)
    positional: list[str] = []
    seen_default = False
    for name, ann in ns.get("__annotations__", {}).items():
        if isinstance(ann, str) and (ann.startswith("ClassVar") or ".ClassVar" in ann):
            continue
        value = ns.pop(name, MISSING)
        if isinstance(value, _Field):
            spec.fields[name] = (value.default, value.default_factory, value.repr, value.compare)
            has_default = value.default is not MISSING or value.default_factory is not MISSING
        else:
            if isinstance(value, list | dict | set):
                raise ValueError(f"mutable default {type(value)} for field {name}")
            spec.fields[name] = (value, MISSING, True, True)
            has_default = value is not MISSING
        spec.annotations[name] = ann
        if not kw_only:
            if seen_default and not has_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            seen_default = seen_default or has_default
            positional.append(name)
    spec.positional = tuple(positional)
    names = tuple(spec.fields)
    ns.pop("__dict__", None)
    ns.pop("__weakref__", None)
    ns["__slots__"] = names
    ns["__record__"] = spec
    ns["__match_args__"] = spec.positional
    ns["__dataclass_fields__"] = _DataclassFields(spec)
    ns.setdefault("__init__", _first_init)
    ns.setdefault("__repr__", _repr)
    if eq:
        key = _key_getter(tuple(n for n, f in spec.fields.items() if f[3]))
        for k, v in _comparisons(key, order).items():
            ns.setdefault(k, v)
        if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
            ns["__hash__"] = (lambda self: hash(key(self))) if frozen else None
    if frozen:
        ns["__setattr__"] = _frozen_setattr
        ns["__delattr__"] = _frozen_delattr
        ns.setdefault("__getstate__", _getstate)  # pickle and copy go around __setattr__
        ns.setdefault("__setstate__", _setstate)
    new: type[T] = type(cls.__name__, cls.__bases__, ns)  # records have no metaclass
    new.__qualname__ = cls.__qualname__
    return new


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(
    *, frozen: bool = False, kw_only: bool = False, eq: bool = True, order: bool = False
) -> Callable[[type[T]], type[T]]: ...
@dataclass_transform(field_specifiers=(field,))
def record(
    cls: type[T] | None = None,
    /,
    *,
    frozen: bool = False,
    kw_only: bool = False,
    eq: bool = True,
    order: bool = False,
) -> Any:
    """Make ``cls`` a slotted record (see the module docstring)."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen, kw_only, eq, order)

    return wrap if cls is None else wrap(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` applied (:func:`dataclasses.replace`)."""
    spec: _Spec | None = getattr(type(obj), "__record__", None)
    if spec is None:
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    for name in spec.fields:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return type(obj)(**changes)


def asdict(obj: Any) -> dict[str, Any]:
    """The record ``obj`` as a dict, recursing into records, lists, tuples and dicts."""
    spec: _Spec | None = getattr(type(obj), "__record__", None)
    if spec is None:
        raise TypeError("asdict() should be called on record instances")
    return {n: _copy(getattr(obj, n)) for n in spec.fields}


def _copy(v: Any) -> Any:
    if getattr(type(v), "__record__", None) is not None:
        return asdict(v)
    if isinstance(v, tuple) and hasattr(v, "_fields"):  # a named tuple
        return type(v)(*(_copy(x) for x in v))
    if isinstance(v, list | tuple):
        return type(v)(_copy(x) for x in v)
    if isinstance(v, dict):
        return type(v)((_copy(k), _copy(x)) for k, x in v.items())
    if hasattr(type(v), "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(v)
    return v
