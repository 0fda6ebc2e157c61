"""LangGraph values as tree entries: JSON where that is exact, LangGraph's serializer elsewhere.

A value a LangGraph checkpoint holds (a channel value, a pending write, metadata) becomes
a tree *entry* (:mod:`ckptstore.trees`), so that equal values get equal ids and are
stored once, whichever checkpoint, thread or write holds them:

* A value that JSON carries exactly (``str``, ``int`` in 64 bits, finite ``float``,
  ``bool``, ``None``, and ``list``/``dict`` of those with string keys, all of exactly
  these types) is stored as JSON. A ``dict`` whose keys are not in sorted order gets an
  extra ``"$order"`` entry listing them, so it reads back in its own order.
* A ``list`` or ``dict`` whose JSON encoding is larger than ``LEAF_MAX`` bytes (or which
  holds something JSON cannot carry) becomes a list or map tree of its items, each
  encoded the same way, down to ``MAX_SPLIT_DEPTH``: a message history that grows by
  one message adds one entry, not a copy of the history.
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
from typing import Any, Final, Protocol

from ckptstore.errors import InvalidValue
from ckptstore.objects import INT_MAX, INT_MIN, pack_canonical
from ckptstore.trees import Entry, Pending, build_list, build_map, store_value

__all__ = ["LEAF_MAX", "MAX_SPLIT_DEPTH", "ORDER", "SERDE", "Serde", "ValueCodec"]

LEAF_MAX: Final = 1024
"""A list or dict whose JSON encoding is larger than this becomes a tree of its items."""
MAX_SPLIT_DEPTH: Final = 4
"""Containers are split into trees down to this nesting depth, then stored whole."""
SERDE: Final = "$serde"
ORDER: Final = "$order"
_DATA: Final = "$data"
_MAX_PLAIN_DEPTH: Final = 200


class Serde(Protocol):
    """LangGraph's ``SerializerProtocol``, as far as values are concerned."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize ``obj`` to a type tag and bytes."""
        ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialize what :meth:`dumps_typed` produced."""
        ...


class _NotPlain(Exception):
    """Internal: a value JSON cannot carry exactly."""


def _plain(value: Any, depth: int) -> Any:
    """The JSON form of ``value`` (canonical: sorted keys), or raise ``_NotPlain``."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _NotPlain
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if depth >= _MAX_PLAIN_DEPTH:
        raise _NotPlain
    if kind is list:
        return [_plain(item, depth + 1) for item in value]
    if kind is dict:
        keys = list(value)
        if not _plain_keys(keys):
            raise _NotPlain
        out = {key: _plain(value[key], depth + 1) for key in keys}
        if keys != sorted(keys):
            out[ORDER] = keys
        return dict(sorted(out.items()))
    raise _NotPlain


def _plain_keys(keys: list[Any]) -> bool:
    return all(type(key) is str for key in keys) and SERDE not in keys and ORDER not in keys


class ValueCodec:
    """Encodes LangGraph values into tree entries and decodes them back.

    Args:
        serde: LangGraph's serializer, used for every value JSON cannot carry.
        plain: whether values JSON carries exactly may be stored as JSON and split into
            trees (true for LangGraph's own ``JsonPlusSerializer``).
    """

    def __init__(self, serde: Serde, *, plain: bool) -> None:
        self.serde = serde
        self.plain = plain

    def encode(self, pending: Pending, value: Any, depth: int = 0) -> Entry:
        """Return the entry for ``value``, adding the objects it needs to ``pending``."""
        if not self.plain:
            return self._typed(pending, value)
        kind = type(value)
        try:
            form = _plain(value, depth)
            data = pack_canonical(form)
        except (_NotPlain, InvalidValue):
            form = data = None
        splittable = depth < MAX_SPLIT_DEPTH and (
            kind is list or (kind is dict and _plain_keys(list(value)))
        )
        if data is not None and (len(data) <= LEAF_MAX or not splittable):
            return store_value(pending, form, data)
        if not splittable:
            return self._typed(pending, value)
        if kind is list:
            return build_list(pending, [self.encode(pending, item, depth + 1) for item in value])
        keys = list(value)
        items = [(key, self.encode(pending, value[key], depth + 1)) for key in keys]
        if keys != sorted(keys):
            items.append((ORDER, self.encode(pending, keys, depth + 1)))
        return build_map(pending, sorted(items))

    def _typed(self, pending: Pending, value: Any) -> Entry:
        tag, data = self.serde.dumps_typed(value)
        form = {SERDE: tag, _DATA: base64.b64encode(data).decode("ascii")}
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
