"""Validation: a state checked against the seed's checkpoint format, made ready to write.

A state is the seed's JSON checkpoint: a few typed top-level fields, and the sections
whose records (tasks, dependencies, outputs, variables) an agent changes a few at a
time. Checking puts every value in canonical form (``objects.canonical``) and applies
the format's rules to the fields and records it names; the first problem is reported
with its JSON path, and nothing is written. Records checked before in this process
are neither checked nor encoded again (:mod:`ckptstore.records`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ckptstore.errors import InvalidCheckpoint, InvalidValue
from ckptstore.objects import canonical, copy_value, member_path, pack_canonical
from ckptstore.records import Encoded, check_record, encoded_record, remember, value_of

__all__ = [
    "STORE_OWNED",
    "fresh_fields",
    "prepare_state",
    "validate_state",
    "validate_variables",
    "with_variables",
]

STORE_OWNED: Final = (
    "checkpoint_id",
    "created_at",
    "session_id",
    "content_hash",
    "parent_checkpoint_id",
    "estimated_tokens",
)
_NULL = type(None)
# (field, allowed types, what to say); checked only when the field is present.
_TOP_LEVEL: Final[tuple[tuple[str, tuple[type, ...], str], ...]] = (
    ("phase", (dict, _NULL), "an object or null"),
    ("phases_completed", (list,), "a list"),
    ("tasks", (list,), "a list of task objects"),
    ("active_task_id", (str, int, _NULL), "a string, an integer or null"),
    ("dependencies", (list,), "a list of dependency objects"),
    ("variables", (dict,), "an object of name: value"),
    ("recent_outputs", (list,), "a list"),
    ("agent_id", (str, _NULL), "a string or null"),
    ("agent_tier", (int, _NULL), "an integer or null"),
)
_NESTED: Final[dict[str, tuple[tuple[str, tuple[type, ...], str], ...]]] = {
    "phase": (
        ("name", (str, _NULL), "a string or null"),
        ("number", (int, float, _NULL), "a number or null"),
        ("status", (str, _NULL), "a string or null"),
    ),
    "tasks": (
        ("id", (str, int, _NULL), "a string or an integer"),
        ("subject", (str, _NULL), "a string or null"),
        ("status", (str, _NULL), "a string or null"),
        ("blocks", (list,), "a list of task ids"),
        ("blocked_by", (list,), "a list of task ids"),
    ),
    "dependencies": (
        ("name", (str, _NULL), "a string"),
        ("status", (str, _NULL), "a string or null"),
        ("endpoint", (str, _NULL), "a string or null"),
    ),
}


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int in Python but not in the checkpoint format.
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _check_fields(obj: Mapping[str, Any], rules: Any, path: str, source: str) -> None:
    for name, types, expected in rules:
        if name in obj and not _type_ok(obj[name], types):
            got = type(obj[name]).__name__
            raise InvalidCheckpoint(
                f"{path}.{name}", f"must be {expected}, not {got}", source=source
            )


def validate_variables(variables: Mapping[str, Any] | None, *, source: str = "") -> dict[str, Any]:
    """Variables given beside a state, in canonical form (what ``commit`` and ``capture`` set).

    Raises:
        InvalidCheckpoint: naming ``$.variables.<name>`` of the first value that is not valid.
    """
    out = {}
    for name, value in (variables or {}).items():
        try:
            out[name] = canonical(value, root=f"$.variables.{name}")
        except InvalidValue as err:
            raise InvalidCheckpoint(err.path, err.problem, source=source) from None
    return out


# The memo keeps a section's records apart from another's: a hit skips its rules.
_RECORD_TAGS: Final = {
    "tasks": b"t",
    "dependencies": b"d",
    "recent_outputs": b"o",
    "variables": b"v",
}


def _check_nested(section: str, path: str, item: Any, source: str) -> None:
    if not isinstance(item, dict):
        raise InvalidCheckpoint(
            path, f"must be an object, not {type(item).__name__}", source=source
        )
    _check_fields(item, _NESTED[section], path, source)


def _canonical_top(
    state: dict[Any, Any],
) -> tuple[dict[str, Any], dict[str, list[Any]], list[tuple[bytes, Encoded]]]:
    """The state in canonical form, with its records as :data:`~ckptstore.records.Encoded`.

    Returns the fields, each section's new records (index, canonical value) for the
    section rules, and the memo keys to remember once every check has passed. Fields
    are taken in key order and records in order, so the first problem found is the one
    ``canonical(state)`` would name.
    """
    if any(type(key) is not str for key in state):
        state = canonical(state)  # str subclasses made plain, other keys rejected
    fields: dict[str, Any] = {}
    fresh: dict[str, list[Any]] = {section: [] for section in _NESTED if section != "phase"}
    keys: list[tuple[bytes, Encoded]] = []
    for name in sorted(state):
        value, path = state[name], member_path("$", name)
        tag = _RECORD_TAGS.get(name)
        shape = dict if name == "variables" else list
        if tag is None or type(value) is not shape:  # (a tuple, a subclass: made plain)
            value = canonical(value, root=path, depth=1)
            if tag is None or type(value) is not shape:
                pack_canonical(value, root=path)  # a lone surrogate shows only when packed
                fields[name] = value
                continue
        if shape is dict and any(type(key) is not str for key in value):
            value = canonical(value, root=path, depth=1)
        named = sorted(value.items()) if shape is dict else list(enumerate(value))
        records = {}
        for at, item in named:
            where = member_path(path, at) if isinstance(at, str) else f"{path}[{at}]"
            record, key, canon = check_record(tag, item, where)
            records[at] = record
            if key is not None:
                keys.append((key, record))
            if canon is not None and name in fresh:
                fresh[name].append((at, canon))
        fields[name] = records if shape is dict else list(records.values())
    return fields, fresh, keys


def prepare_state(state: Any, *, source: str = "") -> dict[str, Any]:
    """Check a checkpoint against the format; return its user fields, ready to write.

    Sections hold :data:`~ckptstore.records.Encoded` records (lists; a dict for
    ``variables``), the other fields canonical values. Store-owned fields are dropped
    (they are set at commit). Records checked before in this process are not checked or
    encoded again (:mod:`ckptstore.records`).

    Raises:
        InvalidCheckpoint: naming the first field that is wrong.
    """
    if not isinstance(state, Mapping):
        raise InvalidCheckpoint(
            "$", f"a checkpoint must be a JSON object, not {type(state).__name__}", source=source
        )
    try:
        fields, fresh, keys = _canonical_top(dict(state))
    except InvalidValue as err:
        raise InvalidCheckpoint(err.path, err.problem, source=source) from None
    _check_fields(fields, _TOP_LEVEL, "$", source)
    if isinstance(fields.get("phase"), dict):
        _check_nested("phase", "$.phase", fields["phase"], source)
    for section, items in fresh.items():
        for index, canon in items:
            _check_nested(section, f"$.{section}[{index}]", canon, source)
    remember(keys)
    for name in STORE_OWNED:
        fields.pop(name, None)
    return fields


def validate_state(state: Any, *, source: str = "") -> dict[str, Any]:
    """Check a checkpoint against the format; return its canonical user fields.

    Store-owned fields are dropped (they are set at commit). The values are the
    caller's own.

    Raises:
        InvalidCheckpoint: naming the first field that is wrong.
    """
    return fresh_fields(prepare_state(state, source=source))


def fresh_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`prepare_state`'s ``fields`` as plain values, each call a copy of its own.

    Records are decoded from their canonical bytes, in C: cheaper than copying values,
    so a prepared state can be kept and made into values whenever one is needed.
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in _RECORD_TAGS:
            out[name] = copy_value(value)
        elif isinstance(value, dict):
            out[name] = {key: value_of(record) for key, record in value.items()}
        else:
            out[name] = [value_of(record) for record in value]
    return out


def with_variables(
    fields: dict[str, Any], assign: Mapping[str, Any], unset: Sequence[str], *, source: str = ""
) -> dict[str, Any]:
    """Prepared ``fields`` with variables set (canonical values) and unset, in place.

    Raises:
        InvalidCheckpoint: if a variable to unset is not set.
    """
    merged = dict(fields.get("variables", {}))
    for name in unset:
        if merged.pop(name, None) is None:
            raise InvalidCheckpoint(
                f"$.variables.{name}", "is not set, so it cannot be unset", source=source
            )
    merged.update({name: encoded_record(pack_canonical(v)) for name, v in assign.items()})
    if merged or "variables" in fields:
        fields["variables"] = dict(sorted(merged.items()))
    return fields
