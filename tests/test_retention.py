"""Retention policies: durations, restic-style rules, and a property test against a model.

The model (``storetools.retention_model``) restates each rule declaratively (group by
period, take the first of each group, take the first N groups), independently of the
single-pass implementation in ``ckptstore/retention.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import InvalidOption
from ckptstore.retention import (
    DEFAULT_KEEP,
    CheckpointTime,
    RetentionPolicy,
    apply_policy,
    checkpoint_time,
    format_duration,
    parse_duration,
)
from storetools import retention_model as model

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)  # a Monday


def records(*times: datetime) -> list[CheckpointTime]:
    return [CheckpointTime(bytes([i]) * 32, t) for i, t in enumerate(times)]


def kept(policy: RetentionPolicy, recs: list[CheckpointTime]) -> list[int]:
    """Indexes (newest first) of the records the policy keeps."""
    keep = apply_policy(policy, recs)
    return [i for i, r in enumerate(recs) if r.id in keep]


# --- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("2w", 1209600),
     ("1d12h", 129600), (" 2H ", 7200), ("0s", 0), ("1h30m15s", 5415)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1h", "1.5h", "1h 2m", "h1", "101y"])
def test_parse_duration_rejects_malformed_text_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidOption, match="--keep-within") as caught:
        parse_duration(text, option="--keep-within")
    assert caught.value.option == "--keep-within"
    assert caught.value.value == text


def test_parse_duration_rejects_more_than_a_century() -> None:
    with pytest.raises(InvalidOption, match="100 years"):
        parse_duration("5300w")


@given(st.integers(0, 100 * 365 * 86400))
def test_format_duration_round_trips(seconds: int) -> None:
    text = format_duration(timedelta(seconds=seconds))
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_format_duration_is_short() -> None:
    assert format_duration(timedelta(hours=1)) == "1h"
    assert format_duration(timedelta(days=90)) == "12w6d"
    assert format_duration(timedelta(0)) == "0s"


def test_checkpoint_time_reads_iso_times_as_utc() -> None:
    assert checkpoint_time("2026-03-02T12:30:00+00:00") == T0
    assert checkpoint_time("2026-03-02T14:30:00+02:00") == T0
    assert checkpoint_time("2026-03-02T12:30:00") == T0
    assert checkpoint_time("yesterday") == datetime.min.replace(tzinfo=UTC)


# --- the rules ---------------------------------------------------------------------------


def test_empty_policy_keeps_nothing_and_its_effective_form_keeps_the_default() -> None:
    recs = records(*(T0 - timedelta(minutes=i) for i in range(80)))
    assert RetentionPolicy().is_empty
    assert kept(RetentionPolicy(), recs) == []
    assert RetentionPolicy().effective() == RetentionPolicy(last=DEFAULT_KEEP)
    assert kept(RetentionPolicy().effective(), recs) == list(range(DEFAULT_KEEP))
    assert RetentionPolicy(last=0).effective() == RetentionPolicy(last=0)


def test_keep_last_counts_in_history_order() -> None:
    recs = records(T0, T0 + timedelta(days=1), T0 - timedelta(days=1), T0)
    assert kept(RetentionPolicy(last=2), recs) == [0, 1]
    assert kept(RetentionPolicy(last=10), recs) == [0, 1, 2, 3]


def test_keep_within_is_measured_from_the_newest_checkpoint_not_from_now() -> None:
    old = T0 - timedelta(days=400)  # a session that went quiet long ago
    recs = records(old, old - timedelta(days=1), old - timedelta(days=2), old - timedelta(days=3))
    assert kept(RetentionPolicy(within=timedelta(days=2)), recs) == [0, 1, 2]
    assert kept(RetentionPolicy(within=timedelta(0)), recs) == [0]


def test_keep_daily_keeps_the_newest_checkpoint_of_each_of_the_last_n_days() -> None:
    recs = records(
        T0, T0 - timedelta(hours=1),  # day 0
        T0 - timedelta(days=1, hours=3),  # day -1
        T0 - timedelta(days=3), T0 - timedelta(days=3, hours=2),  # day -3 (day -2 is empty)
        T0 - timedelta(days=4),
    )  # fmt: skip
    assert kept(RetentionPolicy(daily=3), recs) == [0, 2, 3]
    assert apply_policy(RetentionPolicy(daily=3, last=1), recs)[recs[0].id] == ["last", "daily"]


def test_keep_hourly_weekly_monthly_yearly_use_utc_periods() -> None:
    recs = records(
        T0,
        T0 - timedelta(minutes=20),  # same hour
        T0 - timedelta(minutes=31),  # 11:59, previous hour
        T0 - timedelta(days=1),  # Sunday: previous ISO week
        T0 - timedelta(days=2),  # Saturday 28 February, same week as Sunday
        datetime(2025, 12, 31, tzinfo=UTC),  # previous month and year
    )
    assert kept(RetentionPolicy(hourly=2), recs) == [0, 2]
    assert kept(RetentionPolicy(weekly=5), recs) == [0, 3, 5]
    assert kept(RetentionPolicy(monthly=5), recs) == [0, 4, 5]
    assert kept(RetentionPolicy(monthly=2), recs) == [0, 4]
    assert kept(RetentionPolicy(yearly=1), recs) == [0]


def test_time_rules_never_keep_checkpoints_with_unreadable_times() -> None:
    bad = datetime.min.replace(tzinfo=UTC)
    recs = records(bad, T0, bad)
    assert kept(RetentionPolicy(daily=5, within=timedelta(days=99)), recs) == [1]
    assert kept(RetentionPolicy(last=1), recs) == [0]


@pytest.mark.parametrize(
    "policy_args",
    [{"last": -1}, {"daily": -2}, {"hourly": True}, {"weekly": 1.5}, {"within": timedelta(-1)}],
)
def test_policy_rejects_negative_or_non_integer_counts(policy_args: dict[str, object]) -> None:
    with pytest.raises(InvalidOption):
        RetentionPolicy(**policy_args)  # type: ignore[arg-type]


def test_policy_describes_itself() -> None:
    policy = RetentionPolicy(last=5, within=timedelta(days=7), daily=3)
    assert policy.to_dict() == {"last": 5, "within": "1w", "daily": 3}
    assert policy.describe() == "--keep 5 --keep-within 1w --keep-daily 3"


# --- property: the implementation agrees with a declarative model -------------------------

TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    st.just(datetime.min.replace(tzinfo=UTC)),  # an unreadable created_at
)
POLICIES = st.builds(
    RetentionPolicy,
    last=st.none() | st.integers(0, 12),
    within=st.none() | st.integers(0, 90 * 86400).map(lambda s: timedelta(seconds=s)),
    hourly=st.integers(0, 6),
    daily=st.integers(0, 6),
    weekly=st.integers(0, 4),
    monthly=st.integers(0, 4),
    yearly=st.integers(0, 2),
)


@st.composite
def histories(draw: st.DrawFn) -> list[CheckpointTime]:
    """A history newest first; times mostly decreasing, sometimes not (imports)."""
    count = draw(st.integers(0, 40))
    start = draw(TIMES.filter(lambda t: t.year > 1))
    times = []
    moment = start
    for _ in range(count):
        if draw(st.integers(0, 9)) == 0:
            times.append(draw(TIMES))
        else:
            moment -= timedelta(seconds=draw(st.integers(0, 3 * 86400)))
            times.append(moment)
    return records(*times)


@given(POLICIES, histories())
def test_apply_policy_keeps_exactly_what_the_model_keeps(
    policy: RetentionPolicy, recs: list[CheckpointTime]
) -> None:
    got = apply_policy(policy, recs)
    assert {oid: set(reasons) for oid, reasons in got.items()} == model(policy, recs)
    for reasons in got.values():
        assert len(reasons) == len(set(reasons))
