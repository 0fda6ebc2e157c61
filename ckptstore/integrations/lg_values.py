"""LangGraph values as tree entries: JSON where that is exact, LangGraph's serializer elsewhere.

A value a LangGraph checkpoint holds (a channel value, a pending write, metadata) becomes
a tree *entry* (:mod:`ckptstore.trees`), so that equal values get equal ids and are
stored once, whichever checkpoint, thread or write holds them:

* A value that JSON carries exactly (``str``, ``int`` in 64 bits, finite ``float``,
  ``bool``, ``None``, and ``list``/``dict`` of those with string keys, all of exactly
  these types) is stored as JSON. A ``dict`` whose keys are not in sorted order gets an
  extra ``"$order"`` entry listing them, so it reads back in its own order.
* A ``list`` or ``dict`` larger than about ``LEAF_MAX`` bytes of JSON (or which holds
  something JSON cannot carry) becomes a list or map tree of its items, each encoded
  the same way (values are encoded bottom-up, each part once): a message history that
  grows by one message adds one entry, not a copy of the history.
* Anything else goes through LangGraph's serializer (``serde.dumps_typed``) and is
  stored as ``{"$serde": type, "$data": base64 of the bytes}``.

A ``dict`` holding a key ``"$serde"`` or ``"$order"`` is never stored as JSON (it goes
through the serializer), so the two markers cannot be confused with user data.

With a serializer other than LangGraph's ``JsonPlusSerializer`` (an encrypting one,
say), every value goes through it whole: nothing is stored as JSON or split.
"""

from __future__ import annotations

import base64
import math
import threading
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar

import blake3
import ormsgpack  # type: ignore[import-not-found, unused-ignore]  # LangGraph's, in the extra

from ckptstore.objects import INT_MAX, INT_MIN, pack_canonical
from ckptstore.tree_build import build_list, build_map, store_value
from ckptstore.trees import Entry, Pending

__all__ = ["LEAF_MAX", "ORDER", "SERDE", "Cache", "Serde", "ValueCodec"]

LEAF_MAX: Final = 1024
"""A list or dict of more JSON bytes than about this becomes a tree of its items."""
SERDE: Final = "$serde"
ORDER: Final = "$order"
_DATA: Final = "$data"
_MAX_DEPTH: Final = 200

K = TypeVar("K")
V = TypeVar("V")


class Serde(Protocol):
    """LangGraph's ``SerializerProtocol``, as far as values are concerned."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize ``obj`` to a type tag and bytes."""
        ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialize what :meth:`dumps_typed` produced."""
        ...


def _scalar(value: Any) -> bool:
    """Whether JSON carries ``value`` exactly (a string, number, bool or null)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(INT_MIN <= value <= INT_MAX)
    return kind is float and math.isfinite(value)


def _plain_keys(keys: list[Any]) -> bool:
    return all(type(key) is str for key in keys) and SERDE not in keys and ORDER not in keys


_Part: TypeAlias = tuple[Any, int, Entry | None, bytes | None]
"""A value encoded bottom-up: ``(JSON form, about its size, None, fingerprint)`` while it is
small JSON its parent may embed, else ``(None, 0, entry, fingerprint)``."""

# ormsgpack packs exactly dict, list, str, int (64 bits), float, bool, None and bytes with
# these options, and raises for everything else (tuples, subclasses, enums, big ints...):
# equal bytes then mean a value our encoding treats the same way, byte for byte.
_EXACT: Final = (
    ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
)
CACHE_SIZE: Final = 50_000


def _fingerprint(value: Any, ordered: bool) -> bytes | None:
    """A content key for a container (C speed), or ``None`` if it holds other types."""
    try:
        data = ormsgpack.packb(value, option=_EXACT)
    except TypeError:  # ormsgpack.MsgpackEncodeError is one
        return None
    return blake3.blake3(data).digest() + (b"o" if ordered else b"u")


class Cache(Generic[K, V]):
    """A bounded, thread-safe map that forgets its oldest entries first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored under ``key``, or ``None``."""
        return self._items.get(key)  # one dict lookup is atomic; only changes take the lock

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (forgetting the oldest if full); return it."""
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                del self._items[next(iter(self._items))]
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


class ValueCodec:
    """Encodes LangGraph values into tree entries and decodes them back.

    Containers already encoded are found again by content (a fingerprint taken at C
    speed) instead of being walked: the node's full-state write and the checkpoint
    after it, or 199 unchanged tasks beside a changed one, cost a lookup each. The
    entries found may point at objects stored earlier: :meth:`forget` must be called
    when a write fails, in case those objects never landed or were collected since.

    Args:
        serde: LangGraph's serializer, used for every value JSON cannot carry.
        plain: whether values JSON carries exactly may be stored as JSON and split into
            trees (true for LangGraph's own ``JsonPlusSerializer``).
    """

    def __init__(self, serde: Serde, *, plain: bool) -> None:
        self.serde = serde
        self.plain = plain
        self._parts: Cache[bytes, _Part] = Cache(CACHE_SIZE)
        self._entries: Cache[bytes, Entry] = Cache(CACHE_SIZE)

    def forget(self) -> None:
        """Drop the remembered encodings (after a failed write)."""
        self._parts.clear()
        self._entries.clear()

    def encode(self, pending: Pending, value: Any, *, ordered: bool = True) -> Entry:
        """Return the entry for ``value``, adding the objects it needs to ``pending``.

        ``ordered=False`` drops the key order of dicts (for LangGraph's own records,
        whose keys are looked up, never iterated in order).
        """
        if not self.plain:
            return self._typed(pending, value)
        return self._entry(pending, self._walk(pending, value, 0, ordered))

    def _entry(self, pending: Pending, part: _Part) -> Entry:
        form, _, entry, fingerprint = part
        if entry is not None:
            return entry
        if fingerprint is not None and (found := self._entries.get(fingerprint)) is not None:
            return found
        entry = store_value(pending, form, pack_canonical(form))
        return self._entries.put(fingerprint, entry) if fingerprint is not None else entry

    def _walk(self, pending: Pending, value: Any, depth: int, ordered: bool) -> _Part:
        """Encode bottom-up: small JSON stays a form for the parent, the rest become entries.

        Scalars are handled inline (no call per item) and containers seen before are
        looked up by fingerprint: this is where a checkpoint's CPU goes.
        """
        kind = type(value)
        if (kind is not list and kind is not dict) or depth >= _MAX_DEPTH:
            if _scalar(value):
                return value, len(value) + 2 if kind is str else 9, None, None
            return None, 0, self._typed(pending, value), None
        fingerprint = _fingerprint(value, ordered)
        if fingerprint is not None and (found := self._parts.get(fingerprint)) is not None:
            return found
        part = self._container(pending, value, depth, ordered, fingerprint)
        return self._parts.put(fingerprint, part) if fingerprint is not None else part

    def _container(
        self, pending: Pending, value: Any, depth: int, ordered: bool, fingerprint: bytes | None
    ) -> _Part:
        if type(value) is list:
            parts = [
                (item, len(item) + 2, None, None)
                if type(item) is str
                else (item, 9, None, None)
                if _scalar(item)
                else self._walk(pending, item, depth + 1, ordered)
                for item in value
            ]
            if all(part[2] is None for part in parts):
                size = 5 + sum(part[1] for part in parts)
                if size <= LEAF_MAX:
                    return [part[0] for part in parts], size, None, fingerprint
            entries = [self._entry(pending, part) for part in parts]
            return None, 0, build_list(pending, entries), fingerprint
        keys = list(value)
        if not _plain_keys(keys):
            return None, 0, self._typed(pending, value), fingerprint
        items = {
            key: (item, len(item) + 2, None, None)
            if type(item) is str
            else (item, 9, None, None)
            if _scalar(item)
            else self._walk(pending, item, depth + 1, ordered)
            for key, item in value.items()
        }
        if ordered and keys != sorted(keys):
            items[ORDER] = (keys, 5 + sum(len(key) + 2 for key in keys), None, None)
        names = sorted(items)
        if all(part[2] is None for part in items.values()):
            size = 5 + sum(len(key) + 2 + part[1] for key, part in items.items())
            if size <= LEAF_MAX:
                return {key: items[key][0] for key in names}, size, None, fingerprint
        entries = [(key, self._entry(pending, items[key])) for key in names]
        return None, 0, build_map(pending, entries), fingerprint

    def _typed(self, pending: Pending, value: Any) -> Entry:
        tag, data = self.serde.dumps_typed(value)
        form = {_DATA: base64.b64encode(data).decode("ascii"), SERDE: tag}  # keys in order
        return store_value(pending, form, pack_canonical(form))

    def decode(self, form: Any) -> Any:
        """Turn the JSON form of an entry (resolved, trees included) back into the value."""
        if type(form) is list:
            return [self.decode(item) for item in form]
        if type(form) is not dict:
            return form
        if SERDE in form:
            return self.serde.loads_typed((form[SERDE], base64.b64decode(form[_DATA])))
        order = form.get(ORDER)
        keys = order if order is not None else form.keys()
        return {key: self.decode(form[key]) for key in keys}
