"""Compression: how an object's canonical bytes are represented at rest.

The representation is recorded per object as a codec number, next to the uncompressed
length, so a store can hold objects written with different codecs and a reader never
has to guess. Ids are computed before compression (see ``objects``), so changing the
codec of an object never changes its id.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

import zstandard

from ckptstore.errors import MalformedData

__all__ = ["BASED", "MAX_OBJECT_BYTES", "RAW", "ZSTD", "ZSTD_DELTA", "ZSTD_DICT", "Codec"]

RAW: Final = 0
ZSTD: Final = 1
ZSTD_DICT: Final = 2
"""zstd with a trained dictionary (the bytes of another object: the store's dictionary)."""
ZSTD_DELTA: Final = 3
"""zstd with another object's canonical bytes as raw-content dictionary (a delta)."""

BASED: Final = frozenset({ZSTD_DICT, ZSTD_DELTA})
"""Codecs whose payload can only be read with the bytes of a base object."""

MAX_OBJECT_BYTES: Final = 256 * 1024 * 1024
"""No object may decode to more than this: a guard against decompression bombs."""

# zstd frames cost ~10 bytes of framing; below this size compression never pays.
_MIN_COMPRESS = 48
_FRAME_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_RAW_BLOCK: Final = 128 * 1024  # the largest block a zstd frame may hold


def raw_frame(data: bytes) -> bytes:
    """``data`` as a zstd frame of raw (stored) blocks, per RFC 8878.

    Lets bytes already in memory (a cached or plainly stored base) open a chain that
    zstd decodes in one call; wrapping costs a copy, not a compression.
    """
    # Descriptor 0xA0: single segment, 4-byte content size, no checksum, no dictionary.
    parts = [_FRAME_MAGIC, b"\xa0", len(data).to_bytes(4, "little")]
    start = 0
    while True:
        chunk = data[start : start + _RAW_BLOCK]
        start += _RAW_BLOCK
        last = start >= len(data)
        parts += [(len(chunk) << 3 | last).to_bytes(3, "little"), chunk]
        if last:
            return b"".join(parts)


class Codec:
    """Compresses and decompresses object payloads, reusing zstd contexts.

    zstd contexts are costly to build and not thread-safe, so each thread gets its own
    pair, built on first use and reused for every object after that.
    """

    def __init__(self, level: int = 3) -> None:
        self.level = level
        self._local = threading.local()
        self._trained: dict[bytes, zstandard.ZstdCompressionDict] = {}

    def _contexts(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "pair", None
        )
        if pair is None:
            # No zstd checksum: blake3 over the decompressed bytes already proves integrity.
            compressor = zstandard.ZstdCompressor(
                level=self.level, write_checksum=False, write_content_size=True
            )
            pair = (compressor, zstandard.ZstdDecompressor())
            self._local.pair = pair
        return pair

    def _dictionary(self, codec: int, base: bytes) -> zstandard.ZstdCompressionDict:
        # A trained dictionary is one object used for thousands of others: keep it built.
        if codec == ZSTD_DICT:
            cached = self._trained.get(base)
            if cached is None:
                cached = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_FULLDICT)
                self._trained = {base: cached}
            return cached
        return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)

    def compress_against(self, data: bytes, codec: int, base: bytes) -> bytes:
        """Compress ``data`` with ``base`` as dictionary (``codec``: ZSTD_DICT or ZSTD_DELTA)."""
        compressor = zstandard.ZstdCompressor(
            level=self.level,
            dict_data=self._dictionary(codec, base),
            write_checksum=False,
            write_content_size=True,
            write_dict_id=False,
        )
        return compressor.compress(data)

    def compress(self, data: bytes) -> tuple[int, bytes]:
        """Return ``(codec, payload)`` for ``data``: zstd when that is smaller, else raw."""
        if len(data) < _MIN_COMPRESS:
            return RAW, data
        packed = self._contexts()[0].compress(data)
        if len(packed) >= len(data):
            return RAW, data
        return ZSTD, packed

    def apply_deltas(self, base: bytes, deltas: Sequence[tuple[bytes, int]]) -> bytes:
        """Decode a chain of ``ZSTD_DELTA`` payloads, oldest first, starting from ``base``.

        ``deltas`` holds ``(payload, raw_len)``; each payload was compressed against the
        bytes the one before it decodes to (the first against ``base``). zstd walks the
        whole chain in one call: an order of magnitude less than building a decoder
        per link, which is what a random load of a long history mostly did.

        Raises:
            MalformedData: a damaged frame or a length mismatch somewhere in the chain
                (which link is not known here: decode link by link to find it).
        """
        frames: list[bytes | bytearray | memoryview] = [raw_frame(base)]
        for payload, raw_len in deltas:
            if not 0 <= raw_len <= MAX_OBJECT_BYTES:
                raise MalformedData("object", f"declared length {raw_len} is out of range")
            try:
                declared = zstandard.frame_content_size(payload)
            except zstandard.ZstdError as err:
                raise MalformedData("zstd frame", str(err)) from None
            if declared != raw_len:
                raise MalformedData(
                    "zstd frame", f"frame declares {declared} bytes, expected {raw_len}"
                )
            frames.append(payload)
        try:
            data = self._contexts()[1].decompress_content_dict_chain(frames)
        except zstandard.ZstdError as err:
            raise MalformedData("zstd frame", str(err)) from None
        if deltas and len(data) != deltas[-1][1]:
            raise MalformedData("object", f"decodes to {len(data)} bytes, expected {deltas[-1][1]}")
        return bytes(data)

    def decompress(
        self, codec: int, payload: bytes, raw_len: int, base: bytes | None = None
    ) -> bytes:
        """Return the original bytes, refusing anything that would exceed ``raw_len``.

        ``base`` is the base object's bytes, required by the codecs in ``BASED``.

        Raises:
            MalformedData: unknown codec, a damaged frame, or a length mismatch.
        """
        if not 0 <= raw_len <= MAX_OBJECT_BYTES:
            raise MalformedData("object", f"declared length {raw_len} is out of range")
        if codec == RAW:
            data = payload
        elif codec in BASED:
            if base is None:
                raise MalformedData("object", f"codec {codec} needs a base object")
            try:
                declared = zstandard.frame_content_size(payload)
                if declared not in (-1, raw_len):
                    raise MalformedData(
                        "zstd frame", f"frame declares {declared} bytes, expected {raw_len}"
                    )
                reader = zstandard.ZstdDecompressor(dict_data=self._dictionary(codec, base))
                data = reader.decompress(payload, max_output_size=raw_len)
            except zstandard.ZstdError as err:
                raise MalformedData("zstd frame", str(err)) from None
        elif codec == ZSTD:
            try:
                declared = zstandard.frame_content_size(payload)
                if declared not in (-1, raw_len):
                    raise MalformedData(
                        "zstd frame", f"frame declares {declared} bytes, expected {raw_len}"
                    )
                data = self._contexts()[1].decompress(payload, max_output_size=raw_len)
            except zstandard.ZstdError as err:
                raise MalformedData("zstd frame", str(err)) from None
        else:
            raise MalformedData("object", f"unknown codec {codec}")
        if len(data) != raw_len:
            raise MalformedData("object", f"decodes to {len(data)} bytes, expected {raw_len}")
        return data
