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
from typing import Any, NewType, TypeAlias

import blake3
import msgpack

from ckptstore.errors import InvalidValue, MalformedData

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
