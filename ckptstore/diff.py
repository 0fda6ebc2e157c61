"""Diff: what changed between two checkpoints, as a list of ``Change`` records.

Changes are grouped by section (``SECTIONS``, in display order):

* ``phase``: field by field when both sides are objects, else the whole value;
* ``tasks``, ``dependencies``, ``recent_outputs``: lists. Entries are aligned as
  sequences; a removed and an added entry with the same identity (a task's ``id``, a
  dependency's ``name``) are paired into per-field ``changed`` records (or one ``moved``
  record when only the position changed). ``old_index``/``new_index`` give positions;
* ``variables``: by name;
* ``meta``: every other top-level field by name (agent tier, active task, unknown fields).

The records are complete: :func:`apply_changes` turns the old state into the new one,
so the diff can be trusted as the whole story. This module works on states (dicts); the
tree walk that finds the same records reading only what changed is in ``treediff``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple

from ckptstore.objects import encode

__all__ = [
    "IDENTITY",
    "LIST_SECTIONS",
    "SECTIONS",
    "Change",
    "apply_changes",
    "diff_states",
    "list_changes",
    "map_changes",
    "section_of",
]

Op = Literal["added", "removed", "changed", "moved"]
SECTIONS: Final = ("phase", "tasks", "dependencies", "variables", "recent_outputs", "meta")
LIST_SECTIONS: Final = ("tasks", "dependencies", "recent_outputs")
IDENTITY: Final = {"tasks": "id", "dependencies": "name"}
"""The field that identifies an entry of a list section across checkpoints."""

_OWN_SECTIONS: Final = frozenset({"phase", "tasks", "dependencies", "variables", "recent_outputs"})


class Change(NamedTuple):
    """One difference between two checkpoints.

    ``key`` names the entry (task id, dependency name, variable name, meta field; None
    for ``phase`` and for a whole section); ``field`` names a field inside the entry
    (None for the whole entry). ``old``/``new`` are absent (None) for added/removed.
    """

    section: str
    op: Op
    key: str | None = None
    field: str | None = None
    old: Any = None
    new: Any = None
    old_index: int | None = None
    new_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON form (see docs/diff.md)."""
        out: dict[str, Any] = {
            "section": self.section,
            "op": self.op,
            "key": self.key,
            "field": self.field,
        }
        if self.op != "added":
            out["old"] = self.old
        if self.op != "removed":
            out["new"] = self.new
        if self.old_index is not None:
            out["old_index"] = self.old_index
        if self.new_index is not None:
            out["new_index"] = self.new_index
        return out


def section_of(field: str) -> str:
    """The diff section a top-level checkpoint field belongs to."""
    return field if field in _OWN_SECTIONS else "meta"


def _identity(section: str, value: Any) -> str | None:
    name = IDENTITY.get(section)
    if name is None or not isinstance(value, dict):
        return None
    ident = value.get(name)
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        return None
    return str(ident)


def _field_changes(
    section: str, key: str | None, old: Any, new: Any, old_index: int | None, new_index: int | None
) -> list[Change]:
    """Per-field records for two versions of one entry (the whole value if not objects)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [Change(section, "changed", key, None, old, new, old_index, new_index)]
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append(Change(section, "removed", key, name, old[name], None, old_index, new_index))
        elif name not in old:
            out.append(Change(section, "added", key, name, None, new[name], old_index, new_index))
        elif _differs(old[name], new[name]):
            out.append(
                Change(section, "changed", key, name, old[name], new[name], old_index, new_index)
            )
    return out


def _differs(a: Any, b: Any) -> bool:
    """Whether two JSON values differ as stored: 1, 1.0 and True are three values."""
    if type(a) is not type(b):
        return True
    if isinstance(a, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a != b or str(a) != str(b)  # keeps -0.0 apart from 0.0
    return bool(a != b)


def map_changes(section: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Changes between two maps of entries (variables, meta fields)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            out.append(Change(section, "removed", key, None, old[key], None))
        elif key not in old:
            out.append(Change(section, "added", key, None, None, new[key]))
        elif _differs(old[key], new[key]):
            out.append(Change(section, "changed", key, None, old[key], new[key]))
    return out


def list_changes(
    section: str, deleted: Sequence[tuple[int, Any]], inserted: Sequence[tuple[int, Any]]
) -> list[Change]:
    """Changes from the entries an alignment removed and inserted, with their positions.

    Entries with the same identity are paired, in order of appearance, into field
    changes (or a move); the rest are removals and additions.
    """
    waiting: dict[str, deque[tuple[int, Any]]] = defaultdict(deque)
    for index, value in inserted:
        ident = _identity(section, value)
        if ident is not None:
            waiting[ident].append((index, value))
    paired: set[int] = set()
    out: list[Change] = []
    for old_index, old in deleted:
        ident = _identity(section, old)
        if ident is not None and waiting[ident]:
            new_index, new = waiting[ident].popleft()
            paired.add(new_index)
            if _differs(old, new):
                out.extend(_field_changes(section, ident, old, new, old_index, new_index))
            else:
                out.append(Change(section, "moved", ident, None, old, new, old_index, new_index))
        else:
            out.append(Change(section, "removed", ident, None, old, None, old_index, None))
    for new_index, new in inserted:
        if new_index not in paired:
            ident = _identity(section, new)
            out.append(Change(section, "added", ident, None, None, new, None, new_index))
    out.sort(key=lambda c: (_position(c), c.field or ""))
    return out


def _position(change: Change) -> tuple[int, int]:
    if change.new_index is not None:
        return (change.new_index, 1)
    return (change.old_index or 0, 0)


def _token(value: Any) -> Hashable:
    return encode(value)


def align(
    old: Sequence[Hashable], new: Sequence[Hashable]
) -> Iterable[tuple[str, int, int, int, int]]:
    """Sequence alignment of two token lists (difflib opcodes, no junk heuristics)."""
    from difflib import SequenceMatcher  # not at import: `ckpt commit` rarely aligns

    return SequenceMatcher(None, old, new, autojunk=False).get_opcodes()


def _list_section(section: str, old: Sequence[Any], new: Sequence[Any]) -> list[Change]:
    deleted: list[tuple[int, Any]] = []
    inserted: list[tuple[int, Any]] = []
    for tag, i1, i2, j1, j2 in align([_token(v) for v in old], [_token(v) for v in new]):
        if tag != "equal":
            deleted.extend((i, old[i]) for i in range(i1, i2))
            inserted.extend((j, new[j]) for j in range(j1, j2))
    return list_changes(section, deleted, inserted)


def section_changes(
    section: str, old: Any, new: Any, *, present: tuple[bool, bool]
) -> list[Change]:
    """Changes of one section from its two values (``present``: whether each side has it)."""
    was, now = present
    if not was and not now:
        return []
    if not was:
        return [Change(section, "added", None, None, None, new)]
    if not now:
        return [Change(section, "removed", None, None, old, None)]
    if section in LIST_SECTIONS and isinstance(old, list) and isinstance(new, list):
        return _list_section(section, old, new)
    if section in ("variables", "meta") and isinstance(old, dict) and isinstance(new, dict):
        return map_changes(section, old, new)
    if section == "phase":
        if not _differs(old, new):
            return []
        return _field_changes(section, None, old, new, None, None)
    return [Change(section, "changed", None, None, old, new)] if _differs(old, new) else []


def _split(state: Mapping[str, Any]) -> dict[str, Any]:
    """Group a state's fields by section; meta becomes a dict of the other fields."""
    out: dict[str, Any] = {}
    meta = {}
    for name, value in state.items():
        if section_of(name) == "meta":
            meta[name] = value
        else:
            out[name] = value
    out["meta"] = meta
    return out


def diff_states(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """All changes from checkpoint ``old`` to ``new`` (user fields, as dicts)."""
    a, b = _split(old), _split(new)
    out: list[Change] = []
    for section in SECTIONS:
        out.extend(
            section_changes(
                section, a.get(section), b.get(section), present=(section in a, section in b)
            )
        )
    return out


def _apply_list(old: list[Any], changes: list[Change]) -> list[Any]:
    removed = {c.old_index for c in changes if c.op == "removed" and c.old_index is not None}
    placed: dict[int, Any] = {}
    for change in changes:
        if change.op == "added" and change.new_index is not None:
            placed[change.new_index] = change.new
    by_entry: dict[tuple[int, int], list[Change]] = defaultdict(list)
    for change in changes:
        if change.old_index is not None and change.new_index is not None:
            by_entry[(change.old_index, change.new_index)].append(change)
    for (old_index, new_index), entry_changes in by_entry.items():
        placed[new_index] = _apply_fields(old[old_index], entry_changes)
        removed.add(old_index)
    kept = iter(v for i, v in enumerate(old) if i not in removed)
    size = len(old) - len(removed) + len(placed)
    return [placed[i] if i in placed else next(kept) for i in range(size)]


def _apply_fields(value: Any, changes: list[Change]) -> Any:
    import copy  # here, not at import: `ckpt commit` loads this module but never patches

    result = copy.deepcopy(value)
    for change in changes:
        if change.field is None:
            result = copy.deepcopy(change.new)
        elif change.op == "removed":
            del result[change.field]
        else:
            result[change.field] = copy.deepcopy(change.new)
    return result


def _is_whole(change: Change) -> bool:
    """A change of a whole section (or the whole phase), not of an entry in it."""
    return (
        change.key is None
        and change.field is None
        and change.old_index is None
        and change.new_index is None
    )


def apply_changes(state: Mapping[str, Any], changes: Iterable[Change]) -> dict[str, Any]:
    """Return ``state`` with ``changes`` applied: ``apply_changes(a, diff(a, b)) == b``."""
    import copy  # see _apply_fields

    by_section: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_section[change.section].append(change)
    parts = _split(copy.deepcopy(dict(state)))
    for section, items in by_section.items():
        whole = [c for c in items if _is_whole(c)]
        if whole:
            change = whole[0]
            if change.op == "removed":
                parts.pop(section, None)
            else:
                parts[section] = copy.deepcopy(change.new)
        elif section in LIST_SECTIONS:
            parts[section] = _apply_list(parts[section], items)
        elif section == "phase":
            parts[section] = _apply_fields(parts[section], items)
        else:
            target = parts[section]
            for change in items:
                if change.op == "removed":
                    del target[change.key]
                else:
                    target[change.key] = copy.deepcopy(change.new)
    meta = parts.pop("meta", {})
    return {**parts, **meta}
