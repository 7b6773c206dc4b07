"""Checkpoint codec: detector and rule state to bytes and back, without pickle.

Anyone who can write to Redis could make ``pickle.loads`` run code. This codec writes an orjson
document ``{"v": 1, "state": ...}`` and can only build what it was told to: JSON values, a few
containers JSON lacks (tuple, deque, set, dict with non-string keys, numpy arrays and scalars,
non-finite floats) and instances of classes in an explicit registry. An object is
``{"__t": "<registered name>", "state": ...}``: created with ``cls.__new__`` (or ``cls(*args)``
for a class whose own ``__reduce__`` says so) and filled the way pickle would, through the
class's ``__setstate__`` when it has one. Nothing is imported, called or looked up by a name
the data chooses; anything else (a pickle, another format version, an unregistered type, a
malformed document) raises ``StateError`` and the caller starts that state fresh. Unlike pickle,
an object reachable twice is written twice (checkpointed state shares none).

Detector classes are registered in detectors/state.py, rule state in rules/checkpoint.py, the
engine's own in server/checkpoint.py (the engine's import point); ``register`` is also a class
decorator.

>>> from dataclasses import dataclass
>>> @register
... @dataclass
... class Level:
...     value: float
...     seen: tuple
>>> blob = encode_state(Level(62000.0, (1, 2)))
>>> blob
b'{"v":1,"state":{"__t":"base.state.Level","state":{"value":62000.0,"seen":{"__t":"tuple","items":[1,2]}}}}'
>>> decode_state(blob)
Level(value=62000.0, seen=(1, 2))
>>> decode_state(b'{"v":1,"state":{"__t":"posix.system","state":"id"}}')
Traceback (most recent call last):
...
base.state.StateError: unknown type 'posix.system' (not a registered state class)
>>> import pickle
>>> decode_state(pickle.dumps({"a": 1}))
Traceback (most recent call last):
...
base.state.StateError: a pickle (a checkpoint older than this codec); never unpickled
"""
from __future__ import annotations

import base64
import copyreg
import math
import threading
from collections import deque
from itertools import chain
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import orjson


# Bump when the document layout changes; a document of another version is refused (StateError)
# and the engine starts that state fresh. Classes evolve within a version through __setstate__.
FORMAT_VERSION = 1
TAG = "__t"
# orjson's own integer range; larger ints are written as text.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_STR, _TUPLE = {str}, {tuple}
_LIST = {list}
_TEXT = frozenset({str, bool, type(None)})  # scalars JSON writes as they are
_NUMBERS = frozenset({float, int, bool})  # as they are when finite, and ints when in range
_AS_IS = frozenset({str, bool, type(None), int})  # ints: orjson refuses one out of its range
_CONTAINERS = frozenset({list, dict})  # what a decoded JSON value may need decoding inside
# Array element types a document may name (never "object": that would be pickle again).
_DTYPES = {name: np.dtype(name) for name in ("<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1")}
_SCALARS = {"np.float64": np.float64, "np.float32": np.float32, "np.int64": np.int64,
            "np.int32": np.int32, "np.bool": np.bool_}

class StateError(ValueError):
    """A checkpoint that cannot be encoded or decoded; nothing of it was executed."""


@dataclass(frozen=True)
class _Entry:
    name: str
    cls: type
    encode: Callable[[Any], Any] | None  # custom: object -> plain value (then encoded as usual)
    decode: Callable[[Any], Any] | None  # custom: decoded value -> object
    callable_: bool  # the class's own __reduce__ rebuilds it from arguments (and items)
    # Reduced by object's own __reduce_ex__ to (copyreg.__newobj__, (cls,), __getstate__()): the
    # state is taken from __getstate__ directly, without building the reduction.
    plain: bool = False


# Encodes running now that check the range of every int themselves (encode_state).
_checking_ints = 0
_checking_lock = threading.Lock()
_BY_NAME: dict[str, _Entry] = {}
_BY_TYPE: dict[type, _Entry] = {}


def register(cls: type | None = None, *, name: str | None = None,
             encode: Callable[[Any], Any] | None = None,
             decode: Callable[[Any], Any] | None = None) -> Any:
    """Allow ``cls`` in checkpoints (usable as a class decorator); returns the class.

    By default an instance is saved the way pickle would save it (``__reduce_ex__``, so
    ``__getstate__``/``__setstate__`` are honoured). ``encode``/``decode`` replace that for a
    class pickle rebuilds through a function (e.g. a compiled expression rebuilt from its
    source). Registering the same class again is a no-op; another class under a taken name is
    an error.
    """
    if cls is None:
        return lambda c: register(c, name=name, encode=encode, decode=decode)
    if (encode is None) != (decode is None):
        raise ValueError("encode and decode go together")
    key = name or f"{cls.__module__}.{cls.__qualname__}"
    taken = _BY_NAME.get(key)
    if taken is not None and taken.cls is not cls:
        raise ValueError(f"state type name {key!r} is already registered for {taken.cls!r}")
    own_reduce = "__reduce__" in cls.__dict__ or "__reduce_ex__" in cls.__dict__
    entry = _Entry(key, cls, encode, decode, own_reduce, _reduced_plainly(cls) and not own_reduce)
    _BY_NAME[key] = _BY_TYPE[cls] = entry
    return cls


def _reduced_plainly(cls: type) -> bool:
    """Whether protocol 4 reduces an instance to ``(copyreg.__newobj__, (cls,), obj.__getstate__())``
    and nothing else: object's own reduction, no constructor arguments, no slots, not a
    container (whose items a reduction adds)."""
    return (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and not hasattr(cls, "__getnewargs_ex__") and not hasattr(cls, "__getnewargs__")
            and not issubclass(cls, (list, dict)) and not copyreg._slotnames(cls))  # type: ignore[attr-defined]  # pickle's own


def encode_state(obj: object) -> bytes:
    """``obj`` as a versioned state document; StateError names the first unregistered type."""
    try:
        return orjson.dumps({"v": FORMAT_VERSION, "state": _encode(obj)})
    except StateError:
        raise
    except TypeError:
        # Lists of ints are left to orjson, which refuses an int beyond its range (detector
        # state has none): the careful encode writes that one as text.
        return _encode_checking_ints(obj)
    except (ValueError, RecursionError) as exc:
        raise StateError(f"cannot encode state: {exc}") from exc


def _encode_checking_ints(obj: object) -> bytes:
    global _checking_ints
    with _checking_lock:
        _checking_ints += 1  # another thread's encode meanwhile only checks more than it needs
    try:
        return orjson.dumps({"v": FORMAT_VERSION, "state": _encode(obj)})
    except StateError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateError(f"cannot encode state: {exc}") from exc
    finally:
        with _checking_lock:
            _checking_ints -= 1


def decode_state(data: bytes, expect: type | None = None) -> Any:
    """The object ``encode_state`` wrote; StateError for anything else (nothing is executed).

    With ``expect``, a document holding anything but an instance of that type is refused too:
    a caller gets the kind of state it checkpointed at that key, or StateError.
    """
    state = _decode_document(data)
    if expect is not None and not isinstance(state, expect):
        raise StateError(f"a {type(state).__name__}, not a {expect.__name__}")
    return state


def _decode_document(data: bytes) -> Any:
    if data[:1] == b"\x80":
        raise StateError("a pickle (a checkpoint older than this codec); never unpickled")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"not a state document: {exc}") from None
    if type(document) is not dict or "v" not in document or "state" not in document:
        raise StateError("not a state document (no format version)")
    if type(document["v"]) is not int or document["v"] != FORMAT_VERSION:
        raise StateError(f"state format version {document['v']!r}, this code reads {FORMAT_VERSION}")
    try:
        return _decode(document["state"])
    except StateError:
        raise
    except RecursionError:
        raise StateError("state document nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a registered class refused the data it was given
        raise StateError(f"malformed state: {type(exc).__name__}: {exc}") from None


# -- encoding ---------------------------------------------------------------------------------

def _encode(obj: Any) -> Any:
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return obj
    if kind is float:
        return obj if math.isfinite(obj) else {TAG: "float", "v": repr(obj)}
    if kind is int:
        return obj if _INT_MIN <= obj <= _INT_MAX else {TAG: "int", "v": str(obj)}
    if kind is list:
        return _encode_items(obj)
    if kind is dict:
        if TAG not in obj and _STR.issuperset(map(type, obj)):
            return _encode_attributes(obj) if len(obj) <= 16 else _encode_mapping(obj)
        return {TAG: "dict", "keys": _encode_keys(obj), "values": _encode_items(list(obj.values()))}
    builtin = _ENCODERS.get(kind)
    if builtin is not None:
        return builtin(obj)
    entry = _BY_TYPE.get(kind)
    if entry is None:
        raise StateError(f"cannot encode {kind.__module__}.{kind.__qualname__}: not a registered state class")
    if entry.plain:  # what _encode_reduced writes for it, without building the reduction
        state = obj.__getstate__()
        return {TAG: entry.name} if state is None else {TAG: entry.name, "state": _encode(state)}
    if entry.encode is not None:
        return {TAG: entry.name, "value": _encode(entry.encode(obj))}
    return _encode_reduced(entry, obj)


def _encode_mapping(obj: dict) -> dict:
    """A dict of string keys: itself when orjson writes its values as they are."""
    values = list(obj.values())
    encoded = _encode_items(values)
    return obj if encoded is values else dict(zip(obj, encoded))


def _encode_attributes(obj: dict) -> dict:
    """``_encode_mapping`` for a small dict (an object's attributes, mostly numbers and a few
    containers): a copy only when a value needs encoding, without checking the values in bulk."""
    out = None
    for key, value in obj.items():
        kind = type(value)
        if kind is float:
            if value - value == 0.0:  # finite
                continue
        elif kind in _AS_IS and (kind is not int or not _checking_ints or _INT_MIN <= value <= _INT_MAX):
            continue
        if out is None:
            out = dict(obj)
        out[key] = _encode(value)
    return obj if out is None else out


def _plain(values: list, kinds: set[type]) -> bool:
    """Whether orjson writes every value (of these types) as it is: strings, booleans, None,
    finite floats and ints in its range. Checked in bulk (windows of prices or returns),
    without a call each."""
    if kinds <= _TEXT:
        return True
    if not kinds <= _NUMBERS:
        return False
    if int in kinds and _checking_ints and not (_INT_MIN <= min(values) and max(values) <= _INT_MAX):
        return False
    if float not in kinds:
        return True
    try:  # a sum of floats is finite only when each of them is: no NaN or inf slips through
        return math.isfinite(sum(values))
    except OverflowError:  # an int too large for a float among them
        return False


def _encode_items(items: Any) -> list:
    """Items as a JSON list; scalars (most of a detector's state) without a call each, and so
    lists and tuples of scalars (IPA's dekads, the anomaly score's queues of (index, price))."""
    values = items if type(items) is list else list(items)
    kinds = set(map(type, values))
    if _plain(values, kinds):
        return values
    if kinds == _LIST or kinds == _TUPLE:
        flat = list(chain.from_iterable(values))
        if _plain(flat, set(map(type, flat))):
            return values if kinds == _LIST else [{TAG: "tuple", "items": list(item)} for item in values]
    out: list[Any] = []
    append = out.append
    for item in values:
        kind = type(item)
        if kind is float:  # item - item is 0.0 for a finite float, NaN for inf and NaN
            append(item if item - item == 0.0 else _encode(item))
        elif kind is str or item is None or kind is bool or kind is int and _INT_MIN <= item <= _INT_MAX:
            append(item)
        else:
            append(_encode(item))
    return out


def _encode_keys(mapping: dict) -> Any:
    """Keys of a dict that JSON cannot key; series keys (commodity, market) written in bulk.

    The engine's own state keys a few dicts by series: thousands of tuples on every commit,
    which orjson writes as arrays itself once they are known to hold strings only.
    """
    if set(map(type, mapping)) == _TUPLE and set(map(type, chain.from_iterable(mapping))) <= _STR:
        return {TAG: "str_tuples", "items": list(mapping)}
    return _encode_items(mapping)


def _encode_reduced(entry: _Entry, obj: Any) -> dict:
    """An instance as pickle protocol 4 would reduce it, refusing any other constructor."""
    cls: Any = type(obj)
    reduced = cls.__reduce_ex__(obj, 4)  # the class's, never an attribute of the data
    func, args = reduced[0], reduced[1]
    state, items, dict_items = (tuple(reduced[2:]) + (None, None, None))[:3]
    out: dict[str, Any] = {TAG: entry.name}
    if func is copyreg.__newobj__ and tuple(args) == (entry.cls,):  # type: ignore[attr-defined]  # not in typeshed
        pass
    elif func is entry.cls and entry.callable_:
        out["args"] = [_encode(arg) for arg in args]
    else:
        raise StateError(f"{entry.name} is rebuilt by {func!r}: register it with encode/decode")
    if state is not None:
        out["state"] = _encode(state)
    if items is not None:
        out["items"] = _encode_items(list(items))
    if dict_items is not None:
        raise StateError(f"{entry.name} is a dict subclass: register it with encode/decode")
    return out


def _encode_array(array: np.ndarray) -> dict:
    dtype = array.dtype.str if array.dtype.str in _DTYPES else None
    if dtype is None:
        raise StateError(f"cannot encode a numpy array of {array.dtype}")
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    out = {TAG: "ndarray", "dtype": dtype, "shape": list(array.shape),
           "data": base64.b64encode(array.tobytes(order="F" if fortran else "C")).decode("ascii")}
    if fortran:  # kept, so that numerical results after a restore are bit for bit the same
        out["order"] = "F"
    return out


def _scalar_encoder(name: str) -> Callable[[Any], Any]:
    return lambda obj: {TAG: name, "v": _encode(obj.item())}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    tuple: lambda obj: {TAG: "tuple", "items": _encode_items(obj)},
    deque: lambda obj: {TAG: "deque", "maxlen": obj.maxlen, "items": _encode_items(obj)},
    set: lambda obj: {TAG: "set", "items": _encode_items(obj)},
    frozenset: lambda obj: {TAG: "frozenset", "items": _encode_items(obj)},
    np.ndarray: _encode_array,
    **{scalar: _scalar_encoder(name) for name, scalar in _SCALARS.items()},
}


# -- decoding ---------------------------------------------------------------------------------

def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        # orjson's fresh list is kept when nothing in it needs decoding (a run of numbers), or
        # nothing in its lists (IPA's dekads).
        if _CONTAINERS.isdisjoint(map(type, value)) or _LIST.issuperset(map(type, value)) \
                and _CONTAINERS.isdisjoint(map(type, chain.from_iterable(value))):
            return value
        return [_decode(item) for item in value]
    if kind is not dict:
        return value
    tag = value.get(TAG)
    if tag is None:
        if _CONTAINERS.isdisjoint(map(type, value.values())):
            return value
        return {key: item if type(item) not in _CONTAINERS else _decode(item) for key, item in value.items()}
    if type(tag) is not str:
        raise StateError(f"type tag must be a string, not {tag!r}")
    builtin = _DECODERS.get(tag)
    if builtin is not None:
        return builtin(value)
    entry = _BY_NAME.get(tag)
    if entry is None:
        raise StateError(f"unknown type {tag!r} (not a registered state class)")
    if entry.decode is not None:
        return entry.decode(_decode(value.get("value")))
    return _decode_reduced(entry, value)


def _decode_reduced(entry: _Entry, value: dict) -> Any:
    cls: Any = entry.cls
    if ("args" in value or "items" in value) and not entry.callable_:
        raise StateError(f"{entry.name} is not rebuilt from arguments or items")
    if "args" in value:
        obj = cls(*_list(value, "args"))
    else:
        obj = cls.__new__(cls)
    if "state" in value:
        _set_state(entry, obj, _decode(value["state"]))
    if "items" in value:
        obj.extend(_list(value, "items"))
    return obj


def _set_state(entry: _Entry, obj: Any, state: Any) -> None:
    """What pickle's BUILD does, for attributes only (never a name starting with '__')."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if part is None:
            continue
        if type(part) is not dict or not all(type(k) is str and not k.startswith("__") for k in part):
            raise StateError(f"{entry.name}: attributes must be a mapping of plain names")
    if state:
        obj.__dict__.update(state)
    for name, item in (slots or {}).items():
        setattr(obj, name, item)


def _list(value: dict, field: str) -> list:
    items = _decode(value.get(field))
    if type(items) is not list:
        raise StateError(f"{value[TAG]}: {field} must be a list")
    return items


def _mapping(value: dict) -> dict:
    keys, values = _list(value, "keys"), _list(value, "values")
    if len(keys) != len(values):
        raise StateError(f"dict: {len(keys)} keys but {len(values)} values")
    return dict(zip(keys, values))


def _decode_str_tuples(value: dict) -> list[tuple[str, ...]]:
    items = value.get("items")
    if type(items) is not list or not all(type(item) is list for item in items) \
            or not set(map(type, chain.from_iterable(items))) <= _STR:
        raise StateError("str_tuples: expected lists of strings")
    return list(map(tuple, items))


def _decode_float(value: dict) -> float:
    text = value.get("v")
    if text not in ("nan", "inf", "-inf"):
        raise StateError(f"float: {text!r} is not nan, inf or -inf")
    return float(text)


def _decode_int(value: dict) -> int:
    text = value.get("v")
    if type(text) is not str or len(text) > 4000:
        raise StateError("int: expected its decimal text")
    return int(text)


def _decode_tuple(value: dict) -> tuple:
    items = value.get("items")
    if type(items) is list and _CONTAINERS.isdisjoint(map(type, items)):  # (index, price) of a queue
        return tuple(items)
    return tuple(_list(value, "items"))


def _decode_deque(value: dict) -> deque:
    maxlen = value.get("maxlen")
    if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
        raise StateError(f"deque: bad maxlen {maxlen!r}")
    return deque(_list(value, "items"), maxlen)


def _decode_array(value: dict) -> np.ndarray:
    dtype = _DTYPES.get(value.get("dtype", ""))
    shape = value.get("shape")
    data = value.get("data")
    if dtype is None or type(data) is not str or type(shape) is not list \
            or not all(type(n) is int and n >= 0 for n in shape):
        raise StateError("ndarray: needs an allowed dtype, a shape and base64 data")
    raw = base64.b64decode(data, validate=True)
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise StateError(f"ndarray: {len(raw)} bytes do not fill shape {shape} of {dtype}")
    order: Literal["C", "F"] = "F" if value.get("order") == "F" else "C"
    # A copy: frombuffer's view of bytes is read-only, and detectors update arrays in place.
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy(order=order)


def _decode_scalar(value: dict) -> Any:
    item = _decode(value.get("v"))
    if type(item) not in (int, float, bool):
        raise StateError(f"{value[TAG]}: expected a number")
    return _SCALARS[value[TAG]](item)


_DECODERS: dict[str, Callable[[dict], Any]] = {
    "float": _decode_float,
    "int": _decode_int,
    "tuple": _decode_tuple,
    "deque": _decode_deque,
    "set": lambda value: set(_list(value, "items")),
    "frozenset": lambda value: frozenset(_list(value, "items")),
    "dict": _mapping,
    "str_tuples": _decode_str_tuples,
    "ndarray": _decode_array,
    **{name: _decode_scalar for name in _SCALARS},
}
