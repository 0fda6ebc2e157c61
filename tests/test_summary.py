"""Summaries: budgets hold, output is deterministic, and nothing is dropped silently."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import (
    ContextSummarizer,
    InvalidOption,
    SecretPolicy,
    TaskProfile,
    UnknownTaskType,
)
from ckptstore.diff import diff_states
from ckptstore.summary import LEVELS, MAX_BUDGET, MIN_BUDGET
from ckptstore.tokens import estimate_text
from strategies import checkpoints

FORMATS = ("markdown", "text", "json")
MARKER = re.compile(r"^(?:- |  )?… (\d+) more (.+)$")
COLLAPSED = re.compile(r"^… not shown within \d+ tokens: (.*)$")
WORDS = ("deploy", "migrate", "review", "ledger", "vault", "rollback")
STATUSES = ("pending", "in_progress", "completed", "failed", "blocked", "review")


def big_state(n_tasks: int, seed: int, *, huge: bool = False) -> dict[str, Any]:
    """A seed-format checkpoint with ``n_tasks`` tasks, built fast from a seed."""
    rng = random.Random(seed)
    tasks = [
        {
            "id": str(i),
            "subject": f"Task {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(1, 12))),
            "status": rng.choice(STATUSES),
            "owner": rng.choice([None, "agent-7"]),
            "blocks": [],
            "blocked_by": [],
        }
        for i in range(n_tasks)
    ]  # fmt: skip
    variables: dict[str, Any] = {
        f"var_{i}": rng.choice([i, f"value {i}", [i, i], {"k": i}])
        for i in range(rng.randint(0, 60))
    }
    if huge:
        variables["huge_plan"] = "step " * 200_000  # a megabyte
        variables["huge_list"] = list(range(20_000))
    return {
        "checkpoint_id": f"ckpt-20260123-120000-{seed % 16**8:08x}",
        "phase": {"name": "Phase 5: Agent Bootstrapping", "number": 5, "status": "in_progress"},
        "phases_completed": [1, 2, 3, 4],
        "tasks": tasks,
        "active_task_id": str(rng.randrange(n_tasks)) if n_tasks else None,
        "dependencies": [
            {"name": f"dep{i}", "type": rng.choice(["service", "database", "cache"]),
             "status": rng.choice(["available", "unavailable", "degraded"]),
             "endpoint": f"https://127.0.0.1:{8000 + i}", "last_checked": "2026-01-23T12:00"}
            for i in range(rng.randint(0, 12))
        ],
        "variables": variables,
        "recent_outputs": [
            {"type": "evidence", "id": f"evd-{i}", "action": "terraform",
             "success": rng.random() > 0.2, "timestamp": "2026-01-23T11:30:00+00:00"}
            for i in range(rng.randint(0, 25))
        ],
        "agent_id": "agent-7",
        "agent_tier": 1,
        "custom_field": {"note": "kept"},
    }  # fmt: skip


STATES = st.one_of(
    checkpoints(max_tasks=20),
    st.builds(big_state, st.integers(0, 300), st.integers(0, 2**32), huge=st.booleans()),
    st.builds(big_state, st.sampled_from([1_000, 10_000]), st.integers(0, 2**32)),
)
BUDGETS = st.one_of(st.none(), st.integers(MIN_BUDGET, 6_000))


KNOWN = {
    "checkpoint_id", "created_at", "session_id", "content_hash", "parent_checkpoint_id",
    "estimated_tokens", "phase", "phases_completed", "tasks", "active_task_id",
    "dependencies", "variables", "recent_outputs", "agent_id", "agent_tier",
}  # fmt: skip
TITLES = {
    "Tasks": "tasks", "Dependencies": "dependencies", "Variables": "variables",
    "Recent outputs": "recent_outputs", "Other fields": "other_fields",
}  # fmt: skip


def task_group(task: Any) -> str:
    status = task.get("status") if isinstance(task, dict) else None
    if status in ("in_progress", "failed", "blocked", "pending", "completed"):
        return str(status)
    return {"error": "failed", "done": "completed", "todo": "pending"}.get(str(status), "other")


def expected_scope(state: dict[str, Any], level: str, keys: list[str]) -> dict[str, int]:
    """An oracle: how many entries each section must show or count at ``level``."""
    spec = LEVELS[level]
    variables = state.get("variables") if isinstance(state.get("variables"), dict) else {}
    extra_keys = [k for k in dict.fromkeys(keys) if k not in variables]
    out: dict[str, int] = {}
    if spec.task_counts and "tasks" in state:
        out["tasks"] = sum(1 for t in state["tasks"] if task_group(t) in spec.tasks)
    if state.get("dependencies"):
        out["dependencies"] = len(state["dependencies"])
    if (variables or extra_keys) and (spec.variables != "pinned" or keys):
        out["variables"] = len(variables) + len(extra_keys)
    if spec.outputs and state.get("recent_outputs"):
        out["recent_outputs"] = len(state["recent_outputs"])
    if spec.meta and any(k not in KNOWN for k in state):
        out["other_fields"] = sum(1 for k in state if k not in KNOWN)
    return out


def check_json_accounting(doc: dict[str, Any], expected: dict[str, int]) -> None:
    """Every entry of every section is shown or counted, in the JSON form."""
    if doc.get("collapsed"):
        assert doc["omitted"] == {k: n for k, n in expected.items() if n}
        return
    found = {}
    for name in TITLES.values():
        if name in doc:
            section = doc[name]
            found[name] = len(section["shown"]) + sum(section["omitted"].values())
    assert found == expected


def check_text_accounting(text: str, fmt: str, expected: dict[str, int]) -> None:
    """Item lines plus the numbers in markers make up every section, in the text forms."""
    lines = text.splitlines()
    collapsed = [m.group(1) for line in lines if (m := COLLAPSED.match(line))]
    if collapsed:
        counted = dict(reversed(part.split(" ", 1)) for part in collapsed[0].split(", "))
        assert {
            TITLES.get(k.capitalize(), k.replace(" ", "_")): int(n) for k, n in counted.items()
        } == {k: n for k, n in expected.items() if n}
        return
    found: dict[str, int] = {}
    section = None
    for previous, line in zip(["", *lines], lines, strict=False):
        title = line.removeprefix("## ") if fmt == "markdown" else line
        if (fmt == "markdown" and line.startswith("## ")) or (fmt == "text" and previous == ""):
            section = TITLES.get(title.split(":")[0])
            if section is not None:
                found[section] = 0
            continue
        if section is None or not line:
            continue
        marker = MARKER.match(line)
        found[section] += int(marker.group(1)) if marker else 1
    assert found == expected


@given(
    STATES,
    st.sampled_from(list(LEVELS)),
    st.sampled_from(FORMATS),
    BUDGETS,
    st.lists(
        st.sampled_from(["var_1", "var_2", "agent_id", "missing_key", "huge_plan"]), max_size=3
    ),
)
def test_every_summary_holds_its_budget_is_deterministic_and_counts_what_it_drops(
    state: dict[str, Any], level: str, fmt: str, budget: int | None, keys: list[str]
) -> None:
    summary = ContextSummarizer(state).summary(level, max_tokens=budget, format=fmt, keys=keys)
    limit = budget if budget is not None else LEVELS[level].budget
    assert summary.budget == limit
    assert summary.tokens == estimate_text(summary.text) <= limit
    again = ContextSummarizer(json.loads(json.dumps(state))).summary(
        level, max_tokens=budget, format=fmt, keys=keys
    )
    assert again == summary
    expected = expected_scope(state, level, keys)
    if fmt == "json":
        check_json_accounting(json.loads(summary.text), expected)
    else:
        check_text_accounting(summary.text, fmt, expected)


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_ten_thousand_tasks_and_megabyte_values_fit_every_level(level: str, fmt: str) -> None:
    state = big_state(10_000, seed=5, huge=True)
    summary = ContextSummarizer(state).summary(level, format=fmt)
    assert summary.tokens <= LEVELS[level].budget
    assert summary.tokens > LEVELS[level].budget // 10  # it used the room it had
    expected = expected_scope(state, level, [])
    if fmt == "json":
        check_json_accounting(json.loads(summary.text), expected)
    else:
        check_text_accounting(summary.text, fmt, expected)
        assert "step step" not in summary.text or "chars)" in summary.text


def test_a_tiny_budget_collapses_to_one_line_that_counts_everything() -> None:
    state = big_state(10_000, seed=9)
    summary = ContextSummarizer(state).summary("full", max_tokens=MIN_BUDGET)
    assert summary.tokens <= MIN_BUDGET
    (counted,) = [m.group(1) for line in summary.text.splitlines() if (m := COLLAPSED.match(line))]
    assert "10000 tasks" in counted
    doc = json.loads(
        ContextSummarizer(state).summary("full", max_tokens=MIN_BUDGET, format="json").text
    )
    assert doc["collapsed"] is True
    assert doc["omitted"]["tasks"] == 10_000


def test_markers_name_the_group_and_count_exactly() -> None:
    state: dict[str, Any] = {"checkpoint_id": "ckpt-20260123-120000-00000002"}
    state["tasks"] = [
        {"id": str(i), "subject": f"pending work item {i}", "status": "pending"} for i in range(400)
    ]
    state["tasks"] += [{"id": "x", "subject": "now", "status": "in_progress"}]
    text = ContextSummarizer(state).summary("standard", max_tokens=300).text
    lines = text.splitlines()
    assert "- [~] #x now" in lines
    shown = [line for line in lines if line.startswith("- [ ] #")]
    marker = next(line for line in lines if "more pending tasks" in line)
    assert marker == f"- … {400 - len(shown)} more pending tasks"
    assert 0 < len(shown) < 400


def test_decision_relevant_items_come_first_when_the_budget_is_tight() -> None:
    state = {
        "checkpoint_id": "ckpt-20260123-120000-00000001",
        "tasks": [{"id": str(i), "subject": "done " * 8, "status": "completed"} for i in range(200)]
        + [{"id": "p", "subject": "next", "status": "pending"}]
        + [{"id": "w", "subject": "working", "status": "in_progress"}]
        + [{"id": "f", "subject": "broke", "status": "failed"}],
        "dependencies": [
            {"name": "vault", "status": "available"},
            {"name": "ledger", "type": "database", "status": "unavailable"},
        ],
        "recent_outputs": [{"type": "e", "id": f"ok-{i}", "success": True} for i in range(50)]
        + [{"type": "evidence", "id": "bad-1", "action": "terraform", "success": False}],
    }  # fmt: skip
    text = ContextSummarizer(state).summary("standard", max_tokens=200).text
    lines = text.splitlines()
    failing, available = "- ✗ ledger (database): unavailable", "- ✓ vault: available"
    assert lines.index(failing) < lines.index(available)
    for wanted in ("- [~] #w working", "- [!] #f broke", "- ✗ evidence · terraform · bad-1"):
        assert wanted in lines
    assert any("more completed tasks" in line for line in lines)
    assert not any(line.startswith("- [x]") for line in lines)


def test_levels_add_what_the_original_skill_promises() -> None:
    state = big_state(30, seed=3)
    state["variables"] = {"target_env": "prod", "plan": "a long plan " * 50}
    by_level = {level: ContextSummarizer(state).summary(level).text for level in LEVELS}
    assert "## Tasks" not in by_level["minimal"]
    assert "target_env" not in by_level["minimal"]
    assert "## Tasks" in by_level["compact"]
    assert "target_env" in by_level["compact"]
    assert "[ ]" not in by_level["compact"]  # pending tasks only counted
    assert "## Recent outputs" in by_level["standard"] or not state["recent_outputs"]
    assert "plan = " not in by_level["standard"]
    assert "plan = " in by_level["full"]
    assert "Completed phases" in by_level["full"]
    assert "custom_field" in by_level["full"]


def test_pinned_keys_appear_at_every_level_even_unset_or_top_level() -> None:
    state = big_state(10, seed=4)
    state["variables"]["current_tier"] = 2
    text = ContextSummarizer(state).for_subagent(
        "promotion", relevant_keys=["agent_id", "current_tier", "nope"], max_tokens=500
    )
    assert 'agent_id = "agent-7"' in text
    assert "current_tier = 2" in text
    assert "nope = (not set)" in text
    minimal = ContextSummarizer(state).summary("minimal", keys=["current_tier"]).text
    assert "current_tier = 2" in minimal


def test_task_types_narrow_dependencies_and_variables() -> None:
    state = {
        "dependencies": [
            {"name": "vault", "type": "service", "status": "available"},
            {"name": "pg", "type": "database", "status": "available"},
            {"name": "cache", "type": "cache", "status": "unavailable"},
        ],
        "variables": {"target_env": "prod", "db_dsn": "postgres://x", "step": 3},
    }
    infra = ContextSummarizer(state).for_subagent("terraform")
    assert "vault" in infra
    assert "target_env" in infra
    assert "pg:" not in infra
    assert "db_dsn" not in infra
    assert "✗ cache" in infra  # failing dependencies are always shown
    assert "… 1 more available dependencies" in infra
    database = ContextSummarizer(state).for_subagent("query")
    assert "pg" in database
    assert "db_dsn" in database
    assert "target_env" not in database
    mine = TaskProfile("deploy", ("service",), ("step",))
    custom = ContextSummarizer(state, task_types={"deploy": mine}).for_subagent("deploy")
    assert "step = 3" in custom
    assert "target_env" not in custom


def test_long_values_are_cut_with_a_marker_saying_how_much() -> None:
    state = {"variables": {"plan": "x" * 100_000}}
    text = ContextSummarizer(state).full()
    (line,) = [line for line in text.splitlines() if line.startswith("- plan = ")]
    shown, cut = re.fullmatch(r'- plan = "(x+)… \(\+(\d+) chars\)', line).groups()  # type: ignore[union-attr]
    assert len(shown) + 1 + int(cut) == 100_002  # the value's JSON text, quotes included
    doc = json.loads(ContextSummarizer(state).summary("full", format="json").text)
    (entry,) = doc["variables"]["shown"]
    assert len(entry["value"]["preview"]) + entry["value"]["cut_chars"] == 100_002
    assert entry["value"]["cut_chars"] > 90_000


def test_secrets_are_redacted_unless_revealed() -> None:
    state = {
        "variables": {"API_TOKEN": "tok-123456789", "note": "uses tok-123456789", "x": 1},
        "tasks": [{"id": "1", "subject": "rotate tok-123456789", "status": "in_progress"}],
    }
    for level in LEVELS:
        for fmt in FORMATS:
            text = ContextSummarizer(state).summary(level, format=fmt, keys=["API_TOKEN"]).text
            assert "tok-123456789" not in text
            assert "[redacted]" in text
    revealed = ContextSummarizer(state, secrets=None).summary("full", keys=["API_TOKEN"]).text
    assert "tok-123456789" in revealed
    marked = SecretPolicy(marked=frozenset({"x"}))
    assert "x = [redacted]" in ContextSummarizer(state, secrets=marked).full()


def test_since_summarises_the_changes_first_and_redacts_secrets() -> None:
    before = big_state(20, seed=11)
    before["tasks"][3]["status"] = "pending"
    after = json.loads(json.dumps(before))
    after["checkpoint_id"] = "ckpt-20260123-130000-0000beef"
    after["tasks"][3]["status"] = "failed"
    after["variables"]["DB_PASSWORD"] = "hunter2hunter2"
    before["variables"]["DB_PASSWORD"] = "oldpassword99"
    after["phase"] = {"name": "Phase 6", "number": 6, "status": "in_progress"}
    summary = ContextSummarizer(after).summary(since=before)
    assert "changes since ckpt-20260123-120000-" in summary.text
    assert '- phase.name: "Phase 5: Agent Bootstrapping" → "Phase 6"' in summary.text
    assert "task #3.status:" in summary.text
    assert "DB_PASSWORD: [redacted] → [redacted]" in summary.text
    assert "hunter2" not in summary.text
    assert "oldpassword" not in summary.text
    changes = diff_states(
        {k: v for k, v in before.items() if k != "checkpoint_id"},
        {k: v for k, v in after.items() if k != "checkpoint_id"},
    )
    same = ContextSummarizer(after).summary(changes=changes, since_id=before["checkpoint_id"])
    assert same.text == summary.text
    doc = json.loads(ContextSummarizer(after).summary(since=before, format="json").text)
    section = doc["changes"]
    assert (
        len(section["shown"]) + sum(section["omitted"].values()) == section["total"] == len(changes)
    )


def test_the_original_skills_method_names_work() -> None:
    state = big_state(5, seed=2)
    summarizer = ContextSummarizer(state)
    assert summarizer.standard_summary() == summarizer.standard()
    assert summarizer.minimal_summary() == summarizer.minimal()
    for text, budget in ((summarizer.compact(), 1000), (summarizer.full(), 4000)):
        assert estimate_text(text) <= budget
    assert summarizer.for_subagent("terraform", max_tokens=500).startswith("# Checkpoint")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"level": "huge"}, InvalidOption, "level 'huge': must be one of minimal, compact"),
        ({"format": "yaml"}, InvalidOption, "format 'yaml': must be one of markdown, text, json"),
        ({"max_tokens": MIN_BUDGET - 1}, InvalidOption, f"from {MIN_BUDGET} to {MAX_BUDGET}"),
        ({"max_tokens": 2.5}, InvalidOption, "whole number"),
        ({"task_type": "painting"}, UnknownTaskType, "unknown task type 'painting'; known: "),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ContextSummarizer({}).summary(**kwargs)


def test_an_empty_checkpoint_summarises_to_its_title() -> None:
    assert ContextSummarizer({}).summary().text == "# Checkpoint\n"
    assert ContextSummarizer({"tasks": []}).summary().text == "# Checkpoint\n\n## Tasks: 0\n"
    assert json.loads(ContextSummarizer({}).summary(format="json").text)["level"] == "compact"
