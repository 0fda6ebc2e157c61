"""The codec: zstd when it pays, raw otherwise, and bounded decompression."""

from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from ckptstore.compression import MAX_OBJECT_BYTES, RAW, ZSTD, Codec
from ckptstore.errors import MalformedData


@given(st.binary(max_size=5000))
def test_round_trip_any_bytes(data: bytes) -> None:
    codec = Codec()
    kind, payload = codec.compress(data)
    assert codec.decompress(kind, payload, len(data)) == data


def test_small_and_incompressible_data_stays_raw() -> None:
    codec = Codec()
    assert codec.compress(b"tiny")[0] == RAW
    noise = os.urandom(4096)
    assert codec.compress(noise) == (RAW, noise)


def test_compressible_data_is_zstd_without_checksum() -> None:
    kind, payload = Codec().compress(b"agent checkpoint " * 200)
    assert kind == ZSTD
    assert len(payload) < 200
    params = zstandard.get_frame_parameters(payload)
    assert not params.has_checksum
    assert params.content_size == len(b"agent checkpoint " * 200)


def test_a_frame_declaring_more_than_the_recorded_length_is_refused() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 50_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(MalformedData, match="declares"):
        Codec().decompress(ZSTD, bomb, 100)


def test_a_frame_without_declared_size_cannot_expand_past_the_recorded_length() -> None:
    chunker = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = chunker.compress(b"\0" * 10_000_000) + chunker.flush()
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(MalformedData):
        Codec().decompress(ZSTD, bomb, 1000)


@pytest.mark.parametrize(
    ("codec", "payload", "raw_len"),
    [
        (7, b"abc", 3),  # unknown codec
        (ZSTD, b"not a zstd frame at all", 10),
        (RAW, b"abc", 4),  # length mismatch
        (RAW, b"abc", -1),
        (RAW, b"", MAX_OBJECT_BYTES + 1),
    ],
)
def test_damaged_representations_raise_malformed_data(
    codec: int, payload: bytes, raw_len: int
) -> None:
    with pytest.raises(MalformedData):
        Codec().decompress(codec, payload, raw_len)


@given(st.binary(max_size=300), st.integers(0, 100_000))
def test_random_payloads_never_crash_the_decoder(payload: bytes, raw_len: int) -> None:
    try:
        out = Codec().decompress(ZSTD, payload, raw_len)
    except MalformedData:
        return
    assert len(out) == raw_len
