"""Canonical encoding, ids and commit objects (objects.py)."""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum, IntEnum
from typing import Any

import blake3
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore.commit_object import Commit
from ckptstore.decoding import decode
from ckptstore.errors import CkptError, InvalidValue, MalformedData
from ckptstore.objects import MAX_DEPTH, Kind, canonical, encode, hex_id, object_id, raw_id
from strategies import INT64, json_values

# Golden vectors: (value, canonical bytes, blob id). They pin the encoding: if one of
# these changes, every stored object id changes, and old stores stop deduplicating.
GOLDEN: list[tuple[Any, str, str]] = [
    (None, "c0", "5c198cfabc747c122c54fe24a2cb28f30b1a19859194860f9ee28b8075f53dd5"),
    (True, "c3", "e6c6bc2a3b8cb518bf8373715c91f028e8d18916693abd19b22aed0119529738"),
    (0, "00", "7e458602a87a8f8392966d13b82ac2b8b74837355d18b30dcea4b26206980035"),
    (-1, "ff", "ef9d24e66508a4c302044016c3c404e388d31c0dd520ef95247c6994c1bb24ce"),
    (2**64 - 1, "cfffffffffffffffff", "c8a5bcc9faab52c6d6f73b83514282c4c9c5999cd595b3ff80427313d36b62b8"),  # noqa: E501
    (-(2**63), "d38000000000000000", "0524b0ddd52b099d43d407e6f6a673fcd326c52cf7e40568e8147ea71dc1829e"),  # noqa: E501
    (1.5, "cb3ff8000000000000", "e2958d93dbfe0b3c6c07ff546a476a89dafd6801611ca078d58ac6cee855505e"),
    (-0.0, "cb8000000000000000", "43fa8b7b2cfbcf7ee80f00c2721360cfc46cdec1daac11171930921bf86a039a"),  # noqa: E501
    ("héllo", "a668c3a96c6c6f", "37f0ee1a4160649718e47123063f8c8dff3aa525ae6e4adb0761800569f8dda9"),
    (b"\x00\x01", "c4020001", "c6c17c278e84d9d1323de577375bf9b30fb78ee86611a6de5be7870202562c7d"),
    ([], "90", "beb571e68cf103ac72f6b31cd333a7d934d99d598e60d71983a893199cfd7315"),
    ({}, "80", "5dd9d3d4731efaa85e6bd311eaedfaa566f431529fe7b439862f3d82c1080058"),
    (
        {"b": 1, "a": [2, "x"]},
        "82a1619202a178a16201",
        "8c9d11228f64e732d21455500da6d6d4e69299f149998d1c0fc80357a7e21518",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("value", "encoded", "blob_id"), GOLDEN)
def test_golden_vectors_pin_encoding_and_ids(value: Any, encoded: str, blob_id: str) -> None:
    data = encode(value, allow_bytes=True)
    assert data.hex() == encoded
    assert object_id(Kind.BLOB, data).hex() == blob_id


def test_id_is_blake3_of_kind_header_and_uncompressed_bytes() -> None:
    data = encode({"k": "v"})
    expected = blake3.blake3(b"blob " + str(len(data)).encode() + b"\0" + data).digest()
    assert object_id(Kind.BLOB, data) == expected


def test_kind_is_part_of_the_id() -> None:
    data = encode([])
    ids = {object_id(kind, data) for kind in Kind}
    assert len(ids) == 3


def test_map_keys_are_sorted_whatever_the_insertion_order() -> None:
    a = {"zeta": 1, "alpha": {"y": 2, "b": 3}}
    b = {"alpha": {"b": 3, "y": 2}, "zeta": 1}
    assert encode(a) == encode(b)
    assert msgpack.unpackb(encode(a)) == a
    assert list(msgpack.unpackb(encode(a))) == ["alpha", "zeta"]


def test_keys_sort_by_code_point_which_is_utf8_byte_order() -> None:
    value = {"é": 1, "z": 2, "\U0001f600": 3, "A": 4}
    keys = list(msgpack.unpackb(encode(value)))
    assert keys == sorted(keys, key=lambda k: k.encode())


def test_str_and_bytes_stay_distinct() -> None:
    assert encode("ab", allow_bytes=True) != encode(b"ab", allow_bytes=True)
    assert decode(encode(b"ab", allow_bytes=True)) == b"ab"


def test_minus_zero_keeps_its_own_id() -> None:
    assert encode(-0.0) != encode(0.0)
    assert str(decode(encode(-0.0))) == "-0.0"


def test_tuples_become_lists_and_subclasses_their_base() -> None:
    class Color(str, Enum):  # noqa: UP042 - the pre-StrEnum idiom is what users have
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    value = {"t": (1, 2), "c": Color.RED, "l": Level.HIGH, "o": OrderedDict(b=1, a=2)}
    assert decode(encode(value)) == {"t": [1, 2], "c": "red", "l": 3, "o": {"a": 2, "b": 1}}


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ({"a": float("nan")}, "$.a", "NaN"),
        ({"a": [1, float("inf")]}, "$.a[1]", "Infinity"),
        ({"a": 2**64}, "$.a", "64-bit"),
        ({"a": -(2**63) - 1}, "$.a", "64-bit"),
        ({1: "x"}, "$", "keys must be strings"),
        ({"a": {"b": {1, 2}}}, "$.a.b", "set"),
        ({"a": b"raw"}, "$.a", "bytes"),
        ({"weird key": [object()]}, "$['weird key'][0]", "object"),
        ({"s": "\ud800"}, "$.s", "Unicode"),
    ],
)
def test_invalid_values_are_rejected_naming_the_path(value: Any, path: str, problem: str) -> None:
    with pytest.raises(InvalidValue) as info:
        encode(value)
    assert info.value.path == path
    assert problem in info.value.problem
    assert "\n" not in str(info.value)


def test_nesting_deeper_than_the_limit_is_rejected_without_recursion_error() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidValue, match="deeper than"):
        encode(deep)
    ok: Any = 1
    for _ in range(MAX_DEPTH - 1):
        ok = {"k": ok}
    assert decode(encode(ok)) == ok


@given(json_values())
def test_decode_inverts_encode(value: Any) -> None:
    assert decode(encode(value)) == value


@given(json_values())
def test_encode_inverts_decode_on_canonical_bytes(value: Any) -> None:
    data = encode(value)
    assert encode(decode(data)) == data


@given(json_values())
def test_canonical_is_idempotent(value: Any) -> None:
    once = canonical(value)
    assert canonical(once) == once
    assert encode(once) == encode(value)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\xc1",  # never-used byte
        b"\x93\x01",  # truncated array
        b"\xc0\xc0",  # trailing bytes
        b"\x82\xa1b\x01\xa1a\x02",  # keys out of order
        b"\xcd\x00\x05",  # 5 as uint16: not the smallest encoding
        b"\xca\x3f\xc0\x00\x00",  # float32
        b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # NaN
        b"\xd7\xff\x00\x00\x00\x00\x00\x00\x00\x01",  # timestamp ext
        b"\xd4\x05\x00",  # other ext
        b"\x81\x01\x02",  # int key
        b"\xa2\xff\xfe",  # invalid UTF-8 str
        b"\x91" * 5000 + b"\xc0",  # deep nesting
    ],
)
def test_decode_accepts_only_canonical_encodings(data: bytes) -> None:
    with pytest.raises(MalformedData):
        decode(data)


@given(st.binary(max_size=200))
def test_decode_of_random_bytes_raises_only_store_errors(data: bytes) -> None:
    try:
        value = decode(data)
    except CkptError:
        return
    assert encode(value, allow_bytes=True) == data


def test_hex_and_raw_ids_convert_both_ways() -> None:
    oid = object_id(Kind.BLOB, b"\xc0")
    assert raw_id(hex_id(oid)) == oid
    with pytest.raises(MalformedData):
        raw_id("abc")
    with pytest.raises(MalformedData):
        raw_id("z" * 64)


def _commit(**changes: Any) -> Commit:
    fields: dict[str, Any] = {
        "tree": b"\x01" * 32,
        "parents": (b"\x02" * 32,),
        "created_at": "2026-01-23T12:00:00.000000+00:00",
        "session": "main",
        "notes": "n",
        "agent_id": "agent",
        "agent_tier": 1,
        "estimated_tokens": 42,
    }
    fields.update(changes)
    return Commit(**fields)


def test_commit_round_trips_and_its_encoding_is_pinned() -> None:
    commit = _commit()
    data = commit.to_bytes()
    assert Commit.from_value(decode(data)) == commit
    assert object_id(Kind.COMMIT, data).hex() == (
        "400e679bfaa869f58f8b2ffe33e49e102fb348d5b140b64d49787ecf059fde60"
    )


@given(
    st.lists(st.binary(min_size=32, max_size=32), max_size=3),
    st.none() | st.text(max_size=10),
    st.none() | INT64,
)
def test_commit_round_trips_any_fields(
    parents: list[bytes], agent: str | None, tier: int | None
) -> None:
    commit = _commit(parents=tuple(parents), agent_id=agent, agent_tier=tier)
    assert Commit.from_value(decode(commit.to_bytes())) == commit


def test_a_commit_names_its_tokenizer_only_when_it_has_one() -> None:
    named = _commit(tokenizer="heuristic")
    assert Commit.from_value(decode(named.to_bytes())) == named
    assert "tokenizer" not in decode(_commit().to_bytes())  # older commits keep their ids
    value = decode(named.to_bytes())
    value["tokenizer"] = 7
    with pytest.raises(MalformedData, match="tokenizer"):
        Commit.from_value(value)


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"tree": b"short"},
        {"tree": b"\x01" * 32, "parents": [b"x"]},
        {"tree": b"\x01" * 32, "parents": [], "created_at": 5},
    ],
)
def test_commit_from_malformed_values_is_rejected(broken: Any) -> None:
    with pytest.raises(MalformedData):
        Commit.from_value(broken)


def test_commit_with_a_bool_where_an_int_belongs_is_rejected() -> None:
    value = decode(_commit().to_bytes())
    value["estimated_tokens"] = True
    with pytest.raises(MalformedData):
        Commit.from_value(value)
