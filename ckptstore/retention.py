"""Retention policies in the style of restic's ``forget``: which checkpoints a prune keeps.

A policy is applied to one session's history at a time, newest first. Its rules are
a union: a checkpoint is kept when any rule keeps it, and each kept checkpoint carries
the reasons (``last``, ``within``, ``hourly`` …) so users can see why.

* ``last`` N: the N newest checkpoints.
* ``within`` D: every checkpoint at most D older than the session's newest checkpoint
  (measured from the newest checkpoint, not from now, as restic does: a session that
  went quiet is not emptied by the passing of time).
* ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` N: for each of the N most
  recent hours (days, ISO weeks, months, years) that hold checkpoints, the newest
  checkpoint in it. Periods are in UTC. "Newest" follows the history order: should
  timestamps not be monotonic (imported checkpoints), the first checkpoint met in a
  period is its newest, and periods count in the order they are first met.

This module is pure: it sees ``(id, time)`` records, never a store. Session heads and
tagged checkpoints are kept by the caller (:mod:`ckptstore.prune`), not by a policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from ckptstore.errors import InvalidOption

__all__ = [
    "DEFAULT_KEEP",
    "PERIODS",
    "CheckpointTime",
    "RetentionPolicy",
    "apply_policy",
    "checkpoint_time",
    "format_duration",
    "parse_duration",
]

DEFAULT_KEEP: Final = 50
"""Checkpoints per session a prune keeps when no rule is given (the seed's default)."""

_EPOCH_MIN: Final = datetime.min.replace(tzinfo=UTC)

PERIODS: Final[dict[str, Callable[[datetime], tuple[int, ...]]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}
"""Each periodic rule and the period (in UTC) a checkpoint time falls into."""

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION: Final = re.compile(r"(?:\d+[smhdw])+")
_PART: Final = re.compile(r"(\d+)([smhdw])")
_MAX_SECONDS: Final = 100 * 366 * 86400


def parse_duration(text: str, *, option: str = "duration") -> timedelta:
    """Parse ``90s``, ``30m``, ``1h``, ``7d``, ``2w`` or a sum such as ``1d12h``.

    Raises:
        InvalidOption: naming ``option``, if the text is not such a duration.
    """
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise InvalidOption(
            option, text, "not a duration; use a number and a unit: 90s, 30m, 1h, 7d, 2w, 1d12h"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds > _MAX_SECONDS:
        raise InvalidOption(option, text, "is longer than 100 years")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest ``parse_duration`` spelling of a whole number of seconds (``1d12h``)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def checkpoint_time(created_at: str) -> datetime:
    """A commit's ``created_at`` as an aware UTC datetime (naive means UTC).

    Unparseable timestamps sort as the oldest possible time, so time-based rules never
    keep them by accident and ``last`` still counts them.
    """
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return _EPOCH_MIN
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class CheckpointTime(NamedTuple):
    """What a policy sees of one checkpoint: its commit id and when it was made."""

    id: bytes
    time: datetime


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which checkpoints of a session to keep; every rule is optional, the rules add up.

    ``last`` is ``ckpt prune --keep``. With no rule at all, :meth:`effective` keeps
    the newest :data:`DEFAULT_KEEP`.
    """

    last: int | None = None
    within: timedelta | None = None
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        counts: dict[str, object] = {"last": self.last or 0, **self.periodic()}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidOption(f"keep {name}", value, "must be a whole number, 0 or more")
        if self.within is not None and self.within < timedelta(0):
            raise InvalidOption("keep within", self.within, "must not be negative")

    def periodic(self) -> dict[str, int]:
        """The periodic rules by name (``hourly`` …), including those set to 0."""
        return {name: getattr(self, name) for name in PERIODS}

    @property
    def is_empty(self) -> bool:
        """Whether no rule was given at all."""
        return self.last is None and self.within is None and not any(self.periodic().values())

    def effective(self) -> RetentionPolicy:
        """This policy, or ``last=DEFAULT_KEEP`` if it has no rule."""
        return RetentionPolicy(last=DEFAULT_KEEP) if self.is_empty else self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the rules that are set."""
        out: dict[str, Any] = {}
        if self.last is not None:
            out["last"] = self.last
        if self.within is not None:
            out["within"] = format_duration(self.within)
        out.update((name, n) for name, n in self.periodic().items() if n)
        return out

    def describe(self) -> str:
        """The rules as ``ckpt prune`` options, for messages."""
        flags = {"last": "--keep", "within": "--keep-within"}
        return " ".join(f"{flags.get(k, '--keep-' + k)} {v}" for k, v in self.to_dict().items())


def apply_policy(
    policy: RetentionPolicy, records: Sequence[CheckpointTime]
) -> dict[bytes, list[str]]:
    """Return the checkpoints ``policy`` keeps, each with the rules that keep it.

    ``records`` is one session's history, newest first (the order ``last`` counts
    in; times need not be monotonic). An empty policy keeps nothing: callers that
    want the default use :meth:`RetentionPolicy.effective`.
    """
    kept: dict[bytes, list[str]] = {}

    def keep(record: CheckpointTime, reason: str) -> None:
        kept.setdefault(record.id, []).append(reason)

    for record in records[: policy.last or 0]:
        keep(record, "last")
    if policy.within is not None and records:
        newest = max(record.time for record in records)
        for record in records:
            if record.time != _EPOCH_MIN and newest - record.time <= policy.within:
                keep(record, "within")
    for name, count in policy.periodic().items():
        period = PERIODS[name]
        seen: set[tuple[int, ...]] = set()
        for record in records:
            if len(seen) >= count:
                break
            if record.time == _EPOCH_MIN:
                continue
            key = period(record.time)
            if key not in seen:
                seen.add(key)
                keep(record, name)
    return kept
