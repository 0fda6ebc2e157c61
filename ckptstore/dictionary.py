"""The store's zstd dictionary: trained on its own small records, kept as an object.

A task, a dependency or an output is ~100-300 bytes of msgpack: too little for zstd to
find repetition within one record (x1.1), but records of one store repeat each other's
field names and values. A dictionary trained on the store's recent small blobs and
commits lets each of them compress on its own (x1.9 measured on the benchmark
workload; ``benchmarks/techniques.py``) and stay individually readable.

The dictionary is a blob whose value is the dictionary's bytes; objects compressed with
it name it as their base, so gc keeps it as long as one of them lives. The setting
``zstd_dictionary`` names the current one and the store size it was trained at; a store
that has grown ``RETRAIN_GROWTH`` times larger trains a new one (older objects keep
theirs: ids never change).

Training needs ``4 * DICTIONARY_BYTES`` of small objects among the recent ones; a store
whose records mostly live inline in larger leaves may not have them yet. A failed
attempt is recorded (``zstd_dictionary_tried``, the store size it was made at) and not
repeated until the store has grown ``RETRY_GROWTH`` times: looking for samples reads up
to ``_SAMPLES`` objects, 2-3 ms that every commit of such a store used to pay.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Final

import zstandard

from ckptstore.objects import Kind, encode, object_id
from ckptstore.objectstore import ObjectStore

__all__ = ["DICTIONARY_SETTING", "TRIED_SETTING", "current_dictionary", "maybe_train"]

DICTIONARY_SETTING: Final = "zstd_dictionary"
TRAIN_AT: Final = 1000
"""Objects a store holds before its first dictionary is trained."""
RETRAIN_GROWTH: Final = 8
RETRY_GROWTH: Final = 1.25
TRIED_SETTING: Final = "zstd_dictionary_tried"
DICTIONARY_BYTES: Final = 16 * 1024
_SAMPLES: Final = 4000
_SAMPLE_MAX: Final = 2048


def _setting(objects: ObjectStore) -> tuple[bytes, int] | None:
    raw = objects.backend.get_setting(DICTIONARY_SETTING)
    if not raw:
        return None
    oid, _, count = raw.partition(":")
    try:
        return bytes.fromhex(oid), int(count)
    except ValueError:
        return None


def current_dictionary(objects: ObjectStore) -> bytes | None:
    """The id of the dictionary new small objects are compressed with, if any."""
    found = _setting(objects)
    return found[0] if found else None


def maybe_train(objects: ObjectStore) -> bytes | None:
    """Train a dictionary if the store has none yet, or has outgrown its current one.

    Returns the new dictionary's id, or ``None`` when none was (or could be) trained.
    """
    size = objects.backend.size_hint()
    found = _setting(objects)
    if size < TRAIN_AT:
        return None
    if found is not None:
        oid, trained_at = found
        if size < trained_at * RETRAIN_GROWTH and objects.backend.has_objects([oid]):
            return None
    tried = objects.backend.get_setting(TRIED_SETTING)
    if tried and tried.isdigit() and size < int(tried) * RETRY_GROWTH:
        return None
    recent = objects.backend.recent_objects(_SAMPLES, max_raw_len=_SAMPLE_MAX)
    loaded = objects.read_many([r.id for r in recent], cached=False).values()
    samples: list[bytes | bytearray | memoryview] = [x.data for x in loaded]
    trained = None
    # ZstdError: too little variety to learn from.
    with suppress(zstandard.ZstdError):
        if sum(len(s) for s in samples) >= DICTIONARY_BYTES * 4:
            trained = zstandard.train_dictionary(
                DICTIONARY_BYTES, samples, level=objects.codec.level
            )
    if trained is None:
        objects.backend.set_setting(TRIED_SETTING, str(size))  # try again as the store grows
        return None
    data = encode(trained.as_bytes(), allow_bytes=True)
    oid = object_id(Kind.BLOB, data)
    objects.backend.write(objects.prepare({oid: (Kind.BLOB, data)}))
    objects.backend.set_setting(DICTIONARY_SETTING, f"{oid.hex()}:{size}")
    return oid
