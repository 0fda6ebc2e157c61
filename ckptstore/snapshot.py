"""Snapshot: a checkpoint (the user's state) to and from its tree of objects.

The root of a checkpoint is a map tree with up to six entries::

    phase           the phase value (inline or a blob)
    meta            map tree: agent_id, agent_tier, active_task_id, phases_completed
                    and every top-level field the format does not name
    tasks           list tree, one entry per task, in order
    dependencies    list tree, one entry per dependency, in order
    variables       map tree, one entry per variable
    recent_outputs  list tree, one entry per output, in order

A field absent from the state is absent from the root, so ``load`` gives back exactly
what was committed. The store-owned fields (``validation.STORE_OWNED``) are not stored
in the tree: they are derived from the commit when a checkpoint is loaded. States are
checked and their records encoded by :mod:`ckptstore.validation` before they get here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ckptstore.decoding import decode_trusted
from ckptstore.errors import CorruptObject, InvalidCheckpoint
from ckptstore.objects import Kind, pack_canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.records import (
    Encoded,
    blob_of,
    encoded_record,
    fingerprint,
    value_of,
)
from ckptstore.roots import ROOT_NOT_A_TREE, value_problem
from ckptstore.tokens import Estimator, cached_estimate, estimate_entry, estimator
from ckptstore.tree_build import build_list_parts, build_map, build_map_parts, store_value
from ckptstore.trees import (
    Entry,
    Leaves,
    Pending,
    fetch_closure,
    fresh_items,
    loaded_items,
    read_items,
    resolve,
)

__all__ = [
    "FIELD_ORDER",
    "LIST_SECTIONS",
    "Built",
    "edit_variables",
    "empty_state",
    "read_state",
    "seed_order",
    "unestimated",
    "write_state",
]

LIST_SECTIONS: Final = ("tasks", "dependencies", "recent_outputs")
FIELD_ORDER: Final = (
    "checkpoint_id",
    "created_at",
    "session_id",
    "phase",
    "phases_completed",
    "tasks",
    "active_task_id",
    "dependencies",
    "variables",
    "recent_outputs",
    "agent_id",
    "agent_tier",
    "content_hash",
    "parent_checkpoint_id",
    "estimated_tokens",
)
"""The seed format's field order, used when a checkpoint is printed."""


def empty_state() -> dict[str, Any]:
    """The state a new session starts from when no state is given."""
    return {
        "phase": None,
        "phases_completed": [],
        "tasks": [],
        "active_task_id": None,
        "dependencies": [],
        "variables": {},
        "recent_outputs": [],
        "agent_id": None,
        "agent_tier": None,
    }


class Built:
    """The result of turning a state into objects: root id, new objects, token estimate.

    ``tokenizer`` names the estimator whose count of the whole checkpoint ``tokens``
    is; ``None`` until it has been counted (see :func:`write_state`).
    """

    __slots__ = ("agent", "pending", "root", "tokenizer", "tokens")

    def __init__(
        self,
        root: bytes,
        pending: dict[bytes, tuple[Kind, bytes]] | None = None,
        tokens: int = 0,
        agent: tuple[str | None, int | None] = (None, None),
        tokenizer: str | None = None,
    ) -> None:
        self.root = root
        self.pending = {} if pending is None else pending
        self.tokens = tokens
        self.agent = agent
        self.tokenizer = tokenizer


def _estimated(
    pending: Pending, key: str | None, value: Any, using: Estimator | None
) -> tuple[Entry, int]:
    """The entry for canonical ``value`` and its token estimate (remembered by content).

    With no estimator (``using`` None) the estimate is 0: not counted.
    """
    encoded = pack_canonical(value)
    entry = store_value(pending, value, encoded)
    if using is None:
        return entry, 0
    fingerprint = entry if isinstance(entry, bytes) else encoded
    return entry, estimate_entry(key, value, fingerprint=fingerprint, using=using)


def _record_tokens(key: str | None, record: Encoded, using: Estimator) -> int:
    """A record's token estimate: remembered by its fingerprint, as entries read back are."""
    mark = fingerprint(record)
    found = cached_estimate(using, key, mark)
    if found is None:
        found = estimate_entry(key, value_of(record), fingerprint=mark, using=using)
    return found


def _records(pending: Pending, items: Iterable[Any]) -> list[Encoded]:
    """Records as :data:`Encoded` (canonical values are encoded), their blobs pending."""
    # Canonical values are never tuples (canonical form has lists), Encoded always is.
    out = [item if type(item) is tuple else encoded_record(pack_canonical(item)) for item in items]
    for record in out:
        blob = blob_of(record)
        if blob is not None:
            pending[blob[0]] = (Kind.BLOB, blob[1])
    return out


def unestimated(state: Mapping[str, Any], using: Estimator) -> int:
    """How many of a prepared state's records have no remembered estimate (at most).

    A process that committed the parent remembers all but the changed ones: counting
    the whole state then costs little more than those few estimates.
    """
    missing = 0
    for name, value in state.items():
        if name in LIST_SECTIONS:
            keyed: Iterable[tuple[str | None, Any]] = ((None, record) for record in value)
        elif name == "variables":
            keyed = value.items()
        else:
            continue
        for key, record in keyed:
            if (
                type(record) is not tuple
                or cached_estimate(using, key, fingerprint(record)) is None
            ):
                missing += 1
    return missing


def write_state(state: Mapping[str, Any], *, count_tokens: bool = True) -> Built:
    """Turn checked user fields into objects (see ``validation.prepare_state``).

    Sections may hold :data:`~ckptstore.records.Encoded` records or canonical values.
    With ``count_tokens`` false the token estimate is left uncounted (0, no
    ``tokenizer``): for a caller that counts it from the parent's
    (:mod:`ckptstore.token_delta`).

    Nothing is stored: the new objects are returned in ``Built.pending``.
    """
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    tokens = 0
    using = estimator() if count_tokens else None
    root: dict[str, Entry] = {}
    meta: list[tuple[str, Entry]] = []
    for name, value in state.items():
        if name in LIST_SECTIONS:
            records = _records(pending, value)
            if using is not None:
                tokens += sum(_record_tokens(None, record, using) for record in records) + 1
            parts = [part for part, _, _ in records]
            root[name] = build_list_parts(pending, parts, [cut for _, _, cut in records])
        elif name == "variables":
            named = dict(zip(value, _records(pending, value.values()), strict=True))
            if using is not None:
                tokens += sum(_record_tokens(k, record, using) for k, record in named.items()) + 1
            root[name] = build_map_parts(pending, [(k, part) for k, (part, _, _) in named.items()])
        else:
            entry, cost = _estimated(pending, name, value, using)
            tokens += cost
            if name == "phase":
                root[name] = entry
            else:
                meta.append((name, entry))
    if meta:
        root["meta"] = build_map(pending, sorted(meta))
    root_id = build_map(pending, sorted(root.items()))
    agent_id, tier = state.get("agent_id"), state.get("agent_tier")
    agent = (
        agent_id if isinstance(agent_id, str) else None,
        tier if isinstance(tier, int) else None,
    )
    return Built(root_id, pending, tokens, agent, using.name if using is not None else None)


_ITEM_ORDER: Final = {
    "phase": ("name", "number", "status", "started_at", "notes"),
    "tasks": ("id", "subject", "status", "owner", "blocks", "blocked_by"),
    "dependencies": ("name", "type", "status", "endpoint", "last_checked"),
    "recent_outputs": ("type", "id", "action", "success", "timestamp"),
}


def _seed_order(item: Any, order: tuple[str, ...]) -> Any:
    """Put an object's known fields in the seed's order (storage sorts keys)."""
    if not isinstance(item, dict):
        return item
    out = {k: item[k] for k in order if k in item}
    out.update(item)
    return out


def seed_order(path: tuple[str, ...], value: Any) -> Any:
    """Put the seed format's fields first in a value found at ``path`` (for display)."""
    order = _ITEM_ORDER.get(path[0]) if path else None
    if order is None:
        return value
    if len(path) == 1 and isinstance(value, list) and path[0] != "phase":
        return [_seed_order(item, order) for item in value]
    if len(path) == 1 or (len(path) == 2 and path[0] != "phase"):
        return _seed_order(value, order)
    return value


def read_state(store: ObjectStore, root: bytes) -> dict[str, Any]:
    """Load the user fields of the checkpoint whose root tree is ``root``.

    Fetches the whole tree in one backend batch per level. Objects come back with the
    seed format's fields first, in its order, for readable output.
    """
    leaves: Leaves = {}
    loaded = fetch_closure(store, [root], leaves=leaves)
    kind, node = loaded[root]
    if kind != Kind.TREE:
        raise CorruptObject(root.hex(), ROOT_NOT_A_TREE.format(kind.label))
    if node.is_map:
        flat = loaded_items(loaded, root)
        top = {
            flat[i]: _section(loaded, leaves, flat[i + 1], _ITEM_ORDER.get(flat[i]))
            for i in range(0, len(flat), 2)
        }
    else:
        top = resolve(loaded, root)
    problem = value_problem(top)
    if problem is not None or not isinstance(top, dict):
        raise CorruptObject(root.hex(), problem or "not a map")
    top.update(top.pop("meta", {}))
    return top


def _section(
    loaded: dict[bytes, tuple[Kind, Any]],
    leaves: Leaves,
    entry: Entry,
    order: tuple[str, ...] | None,
) -> Any:
    """A section's value, its records (its items, or itself) in the seed's field order.

    A list tree's records are decoded afresh from its leaves' bytes, in C: cheaper than
    copying them out of the remembered nodes (a third of a load's time went there),
    and already the caller's own, so they are only reordered.
    """
    if order is None:
        return resolve(loaded, entry)
    if isinstance(entry, bytes) and loaded[entry][0] == Kind.TREE and not loaded[entry][1].is_map:
        return [
            _seed_order(item if type(item) is dict else resolve(loaded, item), order)
            for item in fresh_items(loaded, leaves, entry)
        ]
    value = resolve(loaded, entry)
    if isinstance(value, list):
        return [_seed_order(item, order) for item in value]
    return _seed_order(value, order)


def _split(flat: list[Any]) -> dict[str, Entry]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def edit_variables(
    store: ObjectStore,
    root: bytes,
    assign: Mapping[str, Any],
    unset: tuple[str, ...] = (),
) -> tuple[Built, int]:
    """Set and unset variables of the checkpoint at ``root`` without loading the rest.

    Only the root node, the variable tree's nodes and the blobs of replaced values are
    read. ``assign`` values must be canonical. Returns the new objects and the change
    in the token estimate.

    Raises:
        InvalidCheckpoint: if a variable to unset does not exist.
    """
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    top = _split(read_items(store, root))
    variables_ref = top.get("variables")
    current = _split(read_items(store, variables_ref)) if variables_ref is not None else {}
    for name in unset:
        if name not in current:
            raise InvalidCheckpoint(f"$.variables.{name}", "is not set, so it cannot be unset")
    replaced = [k for k in (*assign, *unset) if k in current]
    refs = [current[k] for k in replaced if isinstance(current[k], bytes)]
    blobs = store.get_many(refs) if refs else {}
    delta = 0 if variables_ref is not None else 1
    for name in replaced:
        old = current[name]
        if isinstance(old, bytes):
            value = decode_trusted(blobs[old][1])
            delta -= estimate_entry(name, value, fingerprint=old)
        else:
            delta -= estimate_entry(name, old, fingerprint=pack_canonical(old))
    for name in unset:
        del current[name]
    for name, value in assign.items():
        current[name], cost = _estimated(pending, name, value, estimator())
        delta += cost
    top["variables"] = build_map(pending, sorted(current.items()))
    root_id = build_map(pending, sorted(top.items()))
    return Built(root_id, pending), delta
