"""History: filtered logs across sessions, and the history of one value.

``filtered_log`` merges the first-parent histories of any number of sessions by time
(a checkpoint shared by forked sessions is listed once) and filters by time and notes.
``key_history`` lists the checkpoints where one value changed: consecutive checkpoints
are compared by the id of the subtree that holds the value, so unchanged entries are
never decoded, and a changed subtree is diffed reading only what differs.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Final, NamedTuple

from ckptstore.commits import CommitInfo, iter_history
from ckptstore.diff import Change, section_of
from ckptstore.errors import InvalidDuration, PathNotFound
from ckptstore.objectstore import ObjectStore
from ckptstore.paths import Path, lookup
from ckptstore.treediff import diff_trees
from ckptstore.trees import read_items

__all__ = ["KeyChange", "commit_filter", "filtered_log", "key_history", "parse_moment"]

_RELATIVE: Final = re.compile(r"(\d+)\s*([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time, or a duration ago: ``90s``, ``30m``, ``2h``, ``3d``, ``1w``.

    Raises:
        InvalidDuration: if the text is neither.
    """
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidDuration(text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(info: CommitInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(info.created_at)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def commit_filter(
    *, since: datetime | None = None, until: datetime | None = None, grep: str | None = None
) -> Callable[[CommitInfo], bool]:
    """A predicate on commits: created within [since, until], notes containing ``grep``."""
    needle = grep.casefold() if grep else None

    def passes(info: CommitInfo) -> bool:
        moment = _when(info)
        if (since is not None and moment < since) or (until is not None and moment > until):
            return False
        return needle is None or needle in info.notes.casefold()

    return passes


def filtered_log(
    store: ObjectStore,
    starts: Iterable[bytes],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    grep: str | None = None,
    limit: int | None = None,
) -> list[CommitInfo]:
    """Checkpoints reachable from ``starts`` along first parents, newest first, filtered."""

    def walk(start: bytes) -> Iterator[tuple[datetime, CommitInfo]]:
        for info in iter_history(store, start):
            moment = _when(info)
            yield moment, info
            if since is not None and moment < since:
                return  # older ones cannot match (times grow along a session)

    passes = commit_filter(since=since, until=until, grep=grep)
    merged = heapq.merge(
        *(walk(s) for s in dict.fromkeys(starts)), key=lambda p: p[0], reverse=True
    )
    seen: set[str] = set()

    def keep() -> Iterator[CommitInfo]:
        for _, info in merged:
            if info.id not in seen and passes(info):
                seen.add(info.id)
                yield info

    return list(keep() if limit is None else islice(keep(), limit))


class KeyChange(NamedTuple):
    """A checkpoint where the watched value changed, and how."""

    commit: CommitInfo
    changes: tuple[Change, ...]


def _target(path: Path) -> tuple[str, str | None, str | None]:
    """The (section, key, field) a path watches."""
    if path[0] == "meta":
        return "meta", path[1] if len(path) > 1 else None, None
    section = section_of(path[0])
    if section == "meta":
        return "meta", path[0], None
    if section == "phase":
        return "phase", None, path[1] if len(path) > 1 else None
    key = path[1] if len(path) > 1 else None
    field = path[2] if len(path) > 2 and section in ("tasks", "dependencies") else None
    return section, key, field


def _matches(change: Change, target: tuple[str, str | None, str | None]) -> bool:
    section, key, field = target
    if change.section != section:
        return False
    whole = change.key is None and change.field is None
    if section == "phase":
        return field is None or whole or change.field == field
    if key is None or (whole and change.old_index is None and change.new_index is None):
        return True
    if section == "recent_outputs":
        return key.isdigit() and int(key) in (change.old_index, change.new_index)
    if change.key != key:
        return False
    return field is None or change.field in (None, field)


def _root_entry(store: ObjectStore, root: bytes, name: str) -> object:
    flat = read_items(store, root)
    return dict(zip(flat[0::2], flat[1::2], strict=True)).get(name, _ABSENT)


_ABSENT: Final = object()


def key_history(
    store: ObjectStore,
    start: bytes,
    path: Path,
    *,
    limit: int | None = None,
    keep: Callable[[CommitInfo], bool] = lambda info: True,
) -> list[KeyChange]:
    """The checkpoints from ``start`` back where the value at ``path`` changed, newest first.

    ``keep`` filters the checkpoints reported (by time, notes); ``limit`` counts kept ones.
    """
    target = _target(path)
    section = target[0]
    out: list[KeyChange] = []
    history = iter_history(store, start)
    current = next(history, None)
    while current is not None and (limit is None or len(out) < limit):
        parent = next(history, None)
        new_root = bytes.fromhex(current.tree)
        if parent is None:
            try:
                value = lookup(store, new_root, path)
            except PathNotFound:
                break
            first = Change(section, "added", target[1], target[2], None, value)
            if keep(current):
                out.append(KeyChange(current, (first,)))
            break
        old_root = bytes.fromhex(parent.tree)
        # Same subtree id on both sides: nothing under it changed, nothing to decode.
        changed = _root_entry(store, old_root, section) != _root_entry(store, new_root, section)
        if changed and keep(current):
            found = diff_trees(store, old_root, new_root, sections=(section,))
            changes = tuple(c for c in found if _matches(c, target))
            if changes:
                out.append(KeyChange(current, changes))
        current = parent
    return out
