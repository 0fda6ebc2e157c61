r"""Objects: the canonical encoding of values, object kinds, object ids and commits.

Canonical encoding (an object's id depends on it, so it never changes silently;
``tests/test_objects.py`` pins it with golden vectors):

* msgpack with ``use_bin_type=True``: str and bytes stay distinct; no ext types.
* Map keys are strings, sorted by code point (the same order as their UTF-8 bytes).
* Integers use msgpack's smallest encoding and must lie in [-2**63, 2**64 - 1].
* Floats are always float64. NaN and ±Infinity are rejected (JSON cannot carry them);
  -0.0 is kept as itself, so it has a different id from 0.0.
* Tuples become lists. Nothing else (sets, objects, timestamps) is accepted.
* Nesting deeper than ``MAX_DEPTH`` is rejected before Python's recursion limit.

An object's id is blake3 over ``b"<kind> <length>\\0"`` followed by the canonical,
*uncompressed* bytes, so compression, dictionaries or deltas never change an id.
"""

from __future__ import annotations

import math
import threading
from enum import IntEnum
from typing import Any, Final, NewType, TypeAlias

import blake3
import msgpack

from ckptstore.errors import CorruptObject, InvalidValue, MalformedData

__all__ = [
    "ID_BYTES",
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "JSONValue",
    "Kind",
    "ObjectId",
    "canonical",
    "copy_value",
    "decode",
    "decode_again",
    "decode_stored",
    "decode_trusted",
    "decode_value",
    "encode",
    "hex_id",
    "member_path",
    "object_id",
    "pack_as_given",
    "raw_id",
]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

ObjectId = NewType("ObjectId", str)
"""An object id as 64 lowercase hex characters (the form users see)."""

ID_BYTES = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
MAX_DEPTH = 256


class Kind(IntEnum):
    """The three kinds of object; the kind is part of the id."""

    BLOB = 1
    TREE = 2
    COMMIT = 3

    @property
    def label(self) -> str:
        """The lowercase name used in ids, messages and JSON output."""
        return self.name.lower()


_HEADER_PREFIX = {kind: kind.label.encode() + b" " for kind in Kind}


def object_id(kind: Kind, data: bytes) -> bytes:
    """Return the 32-byte id of an object of ``kind`` whose canonical bytes are ``data``."""
    hasher = blake3.blake3(_HEADER_PREFIX[kind])
    hasher.update(str(len(data)).encode())
    hasher.update(b"\0")
    hasher.update(data)
    return hasher.digest()


def hex_id(raw: bytes) -> ObjectId:
    """The user-facing form of a raw id."""
    return ObjectId(raw.hex())


def raw_id(oid: str) -> bytes:
    """The raw 32 bytes of a full hex id (raises ``MalformedData`` if it is not one)."""
    if len(oid) != 2 * ID_BYTES:
        raise MalformedData("object id", f"{oid!r} is not {2 * ID_BYTES} hex characters")
    try:
        return bytes.fromhex(oid)
    except ValueError:
        raise MalformedData("object id", f"{oid!r} is not hexadecimal") from None


# --- canonical form ---------------------------------------------------------------


class _Bad(Exception):
    """Internal: a value failed validation; ``parts`` collects the path on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.parts: list[str] = []


def _path(parts: list[str], root: str) -> str:
    ordered = parts[::-1]
    if len(ordered) > 12:  # a path into a too-deep value: keep the message one short line
        ordered = [*ordered[:8], "…", *ordered[-2:]]
    return root + "".join(ordered)


def _key_part(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def member_path(root: str, key: str) -> str:
    """The JSON path of map member ``key`` under ``root``, as error messages spell it."""
    return root + _key_part(key)


def _canon(value: Any, depth: int, allow_bytes: bool) -> Any:
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise _Bad(f"nested deeper than {MAX_DEPTH} levels")
        for key in value:
            if not isinstance(key, str):
                raise _Bad(
                    f"has a key of type {type(key).__name__} ({key!r}); keys must be strings"
                )
        out = {}
        for key in sorted(value):
            try:
                out[str.__str__(key)] = _canon(value[key], depth + 1, allow_bytes)
            except _Bad as bad:
                bad.parts.append(_key_part(str(key)))
                raise
        return out
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise _Bad(f"nested deeper than {MAX_DEPTH} levels")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_canon(item, depth + 1, allow_bytes))
            except _Bad as bad:
                bad.parts.append(f"[{index}]")
                raise
        return items
    if value is None or kind is bool:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _Bad(f"integer {value} is outside the 64-bit range")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Bad(f"{value} is not a JSON number (NaN and Infinity are rejected)")
        return value
    if kind is bytes:
        if not allow_bytes:
            raise _Bad("bytes are not a JSON type; encode them as a string")
        return value
    # Subclasses (IntEnum, OrderedDict, str enums...) are stored as their base type;
    # str.__str__ gives the plain value even where a subclass overrides __str__.
    if isinstance(value, str):
        return str.__str__(value)
    plain: Any
    if isinstance(value, int):
        plain = int(value)
    elif isinstance(value, float):
        plain = float(value)
    elif isinstance(value, dict):
        plain = dict(value)
    elif isinstance(value, list | tuple):
        plain = list(value)
    else:
        raise _Bad(f"has type {kind.__name__}, which is not a JSON type")
    return _canon(plain, depth, allow_bytes)


def canonical(value: Any, *, allow_bytes: bool = False, root: str = "$", depth: int = 0) -> Any:
    """Validate ``value`` and return its canonical form (sorted maps, lists for tuples).

    ``depth`` is how deep ``value`` sits in the whole value (whose path is ``root``), so
    that a part checked on its own meets the same ``MAX_DEPTH``.

    Raises:
        InvalidValue: naming the JSON path of the first offending part.
    """
    try:
        return _canon(value, depth, allow_bytes)
    except _Bad as bad:
        raise InvalidValue(_path(bad.parts, root), bad.problem) from None


_local = threading.local()


def _packer() -> msgpack.Packer:
    # A Packer is not thread-safe, and building one per call costs more than packing a
    # small value, so each thread keeps its own.
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = msgpack.Packer(use_bin_type=True, strict_types=True, autoreset=True)
        _local.packer = packer
    return packer


def _first_bad_string(value: Any) -> tuple[list[str], str] | None:
    """Locate a string that cannot be UTF-8 encoded (lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [], "is not valid Unicode (it contains a lone surrogate)"
        return None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_bad_string(key)
            if found is not None:
                return [_key_part(repr(key))], "has a key that is not valid Unicode"
            items.append((_key_part(key), item))
    elif isinstance(value, list):
        items = [(f"[{i}]", item) for i, item in enumerate(value)]
    for part, item in items:
        found = _first_bad_string(item)
        if found is not None:
            found[0].append(part)
            return found
    return None


def pack_canonical(value: Any, *, root: str = "$") -> bytes:
    """Pack a value that is already canonical (the output of :func:`canonical`)."""
    try:
        return bytes(_packer().pack(value))
    except UnicodeEncodeError:
        found = _first_bad_string(value)
        parts, problem = found if found else ([], "is not valid Unicode")
        raise InvalidValue(_path(parts, root), problem) from None


def pack_as_given(value: Any) -> bytes | None:
    """Msgpack bytes of ``value`` as it is (keys in its own order), or ``None``.

    ``None`` when the value holds anything but the exact JSON types (tuples, subclasses,
    integers beyond 64 bits, lone surrogates, nesting past msgpack's own limit). Made in
    C, far cheaper than :func:`canonical`'s walk. Two values with equal bytes here hold
    equal parts of equal exact types with keys in equal order, so they share one
    canonical form (:mod:`ckptstore.records` relies on it).
    """
    try:
        return bytes(_packer().pack(value))
    except (TypeError, ValueError, OverflowError):  # UnicodeEncodeError is a ValueError
        return None


def copy_value(value: Any) -> Any:
    """A deep copy of a canonical value (the output of :func:`canonical`).

    Through msgpack: about three times faster than ``copy.deepcopy`` on a checkpoint.
    """
    return msgpack.unpackb(pack_canonical(value), raw=False, strict_map_key=False)


def encode(value: Any, *, allow_bytes: bool = False, root: str = "$") -> bytes:
    """Return the canonical bytes of ``value``.

    Raises:
        InvalidValue: if the value cannot be stored (see the module docstring).
    """
    return pack_canonical(canonical(value, allow_bytes=allow_bytes, root=root), root=root)


def _reject_ext(code: int, data: bytes) -> Any:
    raise MalformedData("encoding", f"msgpack extension type {code} is not allowed")


# msgpack decodes its timestamp extension (type -1) itself, without calling ext_hook;
# its three encodings start with these bytes.
_TIMESTAMP_MARKS: Final = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")
# Every byte but those that start a map or an array (fixmap, fixarray, 16 and 32 bits).
_NOT_HEADERS: Final = bytes(b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF))


def _unfit(value: Any) -> str | None:
    """Why a decoded value is no JSON value (too deep, a timestamp), or ``None``.

    Walks level by level, without recursion: the value may come from a damaged or
    hostile store and nest up to msgpack's own limit (1,024 levels).
    """
    level = [value]
    for depth in range(MAX_DEPTH + 1):
        inner: list[Any] = []
        containers = 0
        for item in level:
            if type(item) is dict:
                inner.extend(item.values())
                containers += 1
            elif type(item) is list:
                inner.extend(item)
                containers += 1
            elif type(item) is msgpack.Timestamp:
                return "msgpack extension type -1 (timestamp) is not allowed"
        if containers and depth == MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if not inner:
            break  # not a level more to look at: no reason to count up to MAX_DEPTH
        level = inner
    return None


def decode_trusted(data: bytes) -> Any:
    """Decode bytes whose id was just verified (they were produced by :func:`encode`).

    Skips the canonical-form check of :func:`decode`, but still raises only
    ``MalformedData`` should the bytes not be msgpack at all, hold an extension type
    or nest deeper than ``MAX_DEPTH``: a valid id only proves that someone hashed the
    bytes, and such a value would break whoever uses it (``json.dumps``, recursion).
    """
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    except MalformedData:
        raise
    except Exception as err:  # msgpack raises a zoo of types for bad input
        raise MalformedData("encoding", f"{type(err).__name__}: {err}") from None
    # Cheap screens first: each level costs a container header byte, a timestamp has a
    # telltale prefix. Text rarely holds header bytes, so a large text skips the walk.
    deep = len(data) > MAX_DEPTH and len(data.translate(None, _NOT_HEADERS)) > MAX_DEPTH
    # Every timestamp encoding holds 0xff (type -1): one scan rules nearly all data out.
    if deep or (b"\xff" in data and any(mark in data for mark in _TIMESTAMP_MARKS)):
        problem = _unfit(value)
        if problem is not None:
            raise MalformedData("encoding", problem)
    return value


def decode_again(data: bytes) -> Any:
    """Decode bytes that :func:`decode_trusted` has already accepted, for a fresh copy.

    Same bytes, same verdict: the screens are not run twice. Decoding in C is the
    cheapest way to get values no one else holds.
    """
    return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)


def decode_stored(oid: bytes, data: bytes) -> Any:
    """:func:`decode_trusted` for object ``oid`` read from the store.

    Raises:
        CorruptObject: naming ``oid``, when its (correctly hashed) bytes are no value:
            the user learns which object to look for, not only that one is bad.
    """
    try:
        return decode_trusted(data)
    except MalformedData as err:
        raise CorruptObject(oid.hex(), err.problem) from None


def decode_value(oid: bytes, data: bytes) -> Any:
    """:func:`decode_stored` for blob ``oid`` holding part of a checkpoint.

    A checkpoint holds JSON values only; bytes (msgpack ``bin``) are for the store's own
    records (its zstd dictionary). A value holding them came from a damaged or hostile
    store, and would break whoever prints it as JSON.

    Raises:
        CorruptObject: naming ``oid``, when the blob is no JSON value.
    """
    value = decode_stored(oid, data)
    # Cheap screen: a bin value starts with one of these bytes (so may UTF-8 text).
    bins = b"\xc4" in data or b"\xc5" in data or b"\xc6" in data  # memchr: fast
    if bins and _holds_bytes(value):
        raise CorruptObject(oid.hex(), "it holds bytes, which no checkpoint value does")
    return value


def _holds_bytes(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is bytes:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def decode(data: bytes, *, what: str = "encoding") -> Any:
    """Decode untrusted bytes, accepting only the canonical encoding of a value.

    Raises:
        MalformedData: for anything that is not exactly the canonical encoding of a
            value: bad msgpack, trailing bytes, ext types, unsorted keys, non-minimal
            integers, float32, NaN, over-deep nesting.
    """
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    except MalformedData:
        raise
    except Exception as err:  # msgpack raises a zoo of types for bad input
        raise MalformedData(what, f"{type(err).__name__}: {err}") from None
    try:
        again = encode(value, allow_bytes=True)
    except InvalidValue as err:
        raise MalformedData(what, err.message) from None
    if again != data:
        raise MalformedData(what, "not in canonical form")
    return value
