"""The codec: zstd when it pays, raw otherwise, and bounded decompression."""

from __future__ import annotations

import os
from itertools import pairwise

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from ckptstore.compression import MAX_OBJECT_BYTES, RAW, ZSTD, ZSTD_DELTA, Codec, raw_frame
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


@pytest.mark.parametrize("size", [0, 1, 4095, 128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1, 300_000])
def test_raw_frame_is_a_zstd_frame_any_decoder_reads(size: int) -> None:
    data = os.urandom(size)
    frame = raw_frame(data)
    assert zstandard.frame_content_size(frame) == size
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    # a frame of stored blocks: the bytes themselves plus a few bytes of headers
    assert len(frame) - size <= 9 + 3 * (size // (128 * 1024) + 1)


def _versions(count: int) -> list[bytes]:
    text = b"".join(b"line %d of a plan an agent edits each step\n" % i for i in range(400))
    out = [text]
    for n in range(count):
        at = (n * 977) % len(out[-1])
        out.append(out[-1][:at] + b" (revised %d)" % n + out[-1][at:])
    return out


def _chain(codec: Codec, versions: list[bytes]) -> list[tuple[bytes, int]]:
    return [
        (codec.compress_against(new, ZSTD_DELTA, old), len(new)) for old, new in pairwise(versions)
    ]


def test_apply_deltas_decodes_a_chain_as_link_by_link_decoding_does() -> None:
    codec = Codec()
    versions = _versions(16)
    chain = _chain(codec, versions)
    assert codec.apply_deltas(versions[0], chain) == versions[-1]
    assert codec.apply_deltas(versions[5], chain[5:9]) == versions[9]
    assert codec.apply_deltas(versions[3], []) == versions[3]
    step = versions[0]
    for payload, raw_len in chain:
        step = codec.decompress(ZSTD_DELTA, payload, raw_len, step)
    assert step == versions[-1]


def test_apply_deltas_refuses_a_damaged_chain() -> None:
    codec = Codec()
    versions = _versions(4)
    chain = _chain(codec, versions)
    payload, raw_len = chain[1]
    with pytest.raises(MalformedData, match="declares"):
        codec.apply_deltas(versions[0], [chain[0], (payload, raw_len + 1), chain[2]])
    with pytest.raises(MalformedData):
        codec.apply_deltas(versions[0], [chain[0], (payload[:-3], raw_len), chain[2]])
    with pytest.raises(MalformedData, match="out of range"):
        codec.apply_deltas(versions[0], [(payload, MAX_OBJECT_BYTES + 1)])
    # the wrong base: zstd may decode something, but not the version that was stored
    # (which is why the object store hashes what comes out)
    try:
        wrong: bytes | None = codec.apply_deltas(versions[0][::-1], chain)
    except MalformedData:
        wrong = None
    assert wrong != versions[-1]
