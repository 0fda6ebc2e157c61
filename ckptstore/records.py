"""Records: a state's records checked and encoded once per process, not once per commit.

A *record* is one item of a list section (a task, a dependency, an output) or one
variable's value. An agent commits, step after step, states whose records are nearly
all the ones it committed the step before. Each record used to be walked in Python to
check it and put it in canonical form, packed, hashed for its id or chunk boundary, and
packed again inside its tree node: on the `long` benchmark's states (~470 records, a
few of them changed per step) that came to most of an in-process commit.

A record's msgpack bytes *as given* (:func:`~ckptstore.objects.pack_as_given`: exact
JSON types only, keys in the caller's order) are made in C, and they decide everything
else about it: two records with equal bytes hold equal parts of equal exact types,
keys in equal order, so they share one canonical form, one id and one boundary hash.
So the memo maps those bytes, prefixed by the record's section, to an :data:`Encoded`:
its part (its bytes in a tree node), its blob's canonical bytes when it is too large to
inline, and its boundary hash. Plain bytes and integers: tuples of them are untracked
by Python's garbage collector, so the memo adds nothing to its full collections.

A record enters the memo only once its whole state has been checked (section rules
included), so a hit needs no checking. Records that cannot be packed as given (a
tuple, a subclass, an integer beyond 64 bits, a lone surrogate) take the long way, and
so do records larger than ``VALUE_MAX``: a long text is a single part, cheap to check,
while a lookup would hash all of its bytes. The memo is shared by every store in the
process (a record's encoding does not depend on the store) and bounded by bytes: two
generations, the older dropped when the newer fills.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from ckptstore.decoding import decode_again
from ckptstore.objects import canonical, pack_as_given, pack_canonical
from ckptstore.tree_build import REF_PREFIX, blob_id, inline_boundary, ref_boundary

__all__ = [
    "RECORD_DEPTH",
    "VALUE_MAX",
    "Encoded",
    "blob_of",
    "check_record",
    "encoded_record",
    "fingerprint",
    "forget_all",
    "remember",
    "value_of",
]

Encoded: TypeAlias = tuple[bytes, bytes | None, int]
"""A record's ``(part, blob, boundary)``: its bytes in a tree node (the canonical bytes
if inline, else the reference), its blob's canonical bytes (``None`` if inline) and its
boundary hash (for where list trees are cut)."""

RECORD_DEPTH: Final = 2
"""How deep records sit in a state (state → section → record), for ``MAX_DEPTH``."""

VALUE_MAX: Final = 16 * 1024
_GENERATION_BYTES: Final = 8 * 1024 * 1024


def encoded_record(encoded: bytes) -> Encoded:
    """The :data:`Encoded` of a record whose canonical bytes are ``encoded``."""
    oid = blob_id(encoded)
    if oid is None:
        return encoded, None, inline_boundary(encoded)
    return REF_PREFIX + oid, encoded, ref_boundary(oid)


def _canonical_bytes(record: Encoded) -> bytes:
    part, blob, _ = record
    return part if blob is None else blob


def blob_of(record: Encoded) -> tuple[bytes, bytes] | None:
    """``(id, canonical bytes)`` of the blob a record needs stored, if it is not inline."""
    part, blob, _ = record
    return None if blob is None else (part[len(REF_PREFIX) :], blob)


def fingerprint(record: Encoded) -> bytes:
    """What identifies the record's value exactly: its blob's id, or its canonical bytes.

    The same fingerprint ``snapshot`` gives token estimates for entries it reads back.
    """
    part, blob, _ = record
    return part if blob is None else part[len(REF_PREFIX) :]


def value_of(record: Encoded) -> Any:
    """A fresh copy of the record's canonical value (the caller may change it)."""
    return decode_again(_canonical_bytes(record))


class _Generations:
    """Bytes to :data:`Encoded`, bounded; a lookup moves a hit into the newer generation.

    Cheaper than LRU bookkeeping, and what recent commits used stays. Each step is one
    dict operation, so threads sharing it can at worst lose an entry, never see a
    wrong one.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.newer: dict[bytes, Encoded] = {}
        self.older: dict[bytes, Encoded] = {}
        self.size = 0

    def get(self, key: bytes) -> Encoded | None:
        found = self.newer.get(key)
        if found is None:
            found = self.older.get(key)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: bytes, record: Encoded) -> None:
        size = len(key) + len(record[0]) + len(record[1] or b"")
        if self.size + size > self.limit:
            self.older, self.newer, self.size = self.newer, {}, 0
        self.newer[key] = record
        self.size += size

    def clear(self) -> None:
        self.newer, self.older, self.size = {}, {}, 0


_MEMO = _Generations(_GENERATION_BYTES)


def check_record(tag: bytes, value: Any, path: str) -> tuple[Encoded, bytes | None, Any]:
    """A record's :data:`Encoded`, from the memo when its bytes were seen in ``tag``.

    Returns ``(record, key, canon)``. On a hit ``key`` and ``canon`` are ``None``;
    otherwise ``canon`` is the canonical value, still to be checked by the section's
    rules, and ``key`` (if not ``None``) is what to :func:`remember` it by once the whole
    state has passed.

    Raises:
        InvalidValue: as :func:`~ckptstore.objects.canonical`, naming paths under ``path``.
    """
    given = pack_as_given(value)
    key = None
    if given is not None and len(given) <= VALUE_MAX:
        key = tag + given
        found = _MEMO.get(key)
        if found is not None:
            return found, None, None
    canon = canonical(value, root=path, depth=RECORD_DEPTH)
    return encoded_record(pack_canonical(canon, root=path)), key, canon


def remember(checked: list[tuple[bytes, Encoded]]) -> None:
    """Remember records of a state that has passed every check, by their keys.

    Each is remembered in its canonical form too (its canonical bytes are how that form
    packs as given): ``Store.capture`` checks a state, applies its edits to the
    canonical values and checks the result again.
    """
    for key, record in checked:
        _MEMO.put(key, record)
        canonical_key = key[:1] + _canonical_bytes(record)  # tags are one byte
        if canonical_key != key:
            _MEMO.put(canonical_key, record)


def forget_all() -> None:
    """Drop every remembered record (for tests, or to give the memory back)."""
    _MEMO.clear()
