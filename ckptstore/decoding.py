"""Decoding: stored bytes back into values, screened for what no checkpoint may hold.

The other direction of :mod:`ckptstore.objects`. Bytes read from a store are decoded in
C (msgpack), and then screened:
- msgpack extension types are refused, its own timestamp included;
- nesting deeper than ``MAX_DEPTH`` is refused;
- for checkpoint values, bytes are refused (JSON has none).

Bytes whose id was just verified skip the canonical-form check that untrusted bytes get
(:func:`decode`). Every problem is ``MalformedData``, or ``CorruptObject`` naming the
object.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from ckptstore.errors import CorruptObject, InvalidValue, MalformedData
from ckptstore.objects import MAX_DEPTH, encode

__all__ = ["decode", "decode_again", "decode_stored", "decode_trusted", "decode_value"]


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
