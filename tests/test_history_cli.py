"""The history commands through the command line: ``diff``, ``log`` filters and ``--key``,
``show REF:PATH``, sessions and tags (issue 3). Error paths live in
``test_history_cli_errors.py``.

Stores are built with the library (fixed times, so checkpoint ids are known); every
assertion is about what the real ``ckpt`` command prints.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from ckpt_cli.render_diff import render_changes, use_color
from ckptstore import Store
from ckptstore.diff import LIST_SECTIONS, SECTIONS
from test_cli import CKPT_SCRIPT, SEED_STATE, ckpt, ok, store_counts, write_json

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG_PLAN = "final plan: " + "step; " * 60
DOCS = Path(__file__).resolve().parent.parent / "docs" / "diff.md"


def at(hour: int, minute: int = 0) -> str:
    return f"2026-01-23T{hour:02d}:{minute:02d}:00+00:00"


def history_states() -> list[tuple[dict[str, Any], str]]:
    """Four checkpoints of one session, each touching known sections, with their notes."""
    s0 = copy.deepcopy(SEED_STATE)
    s0["variables"] = {"custom_key": "custom_value", "plan": "draft"}
    s1 = copy.deepcopy(s0)  # task 42 added, plan edited, vault re-checked only
    s1["tasks"].append(
        {"id": "42", "subject": "Ship it", "status": "pending", "owner": None,
         "blocks": [], "blocked_by": ["2"]}
    )  # fmt: skip
    s1["variables"]["plan"] = "v2"
    s1["dependencies"][0]["last_checked"] = at(12, 5)
    s2 = copy.deepcopy(s1)  # task 42 started, tier and active task change, re-check only
    s2["tasks"][2]["status"] = "in_progress"
    s2["agent_tier"] = 2
    s2["active_task_id"] = "42"
    s2["dependencies"][0]["last_checked"] = at(12, 10)
    s3 = copy.deepcopy(s2)  # phase done, vault down, variables, an output, an unknown field
    s3["phase"]["status"] = "completed"
    s3["tasks"][2]["owner"] = "agent-7"
    s3["dependencies"][0]["status"] = "unavailable"
    s3["dependencies"][0]["endpoint"] = "https://127.0.0.1:8201"
    s3["variables"]["a.b"] = 1
    del s3["variables"]["custom_key"]
    s3["variables"]["plan"] = LONG_PLAN
    s3["recent_outputs"].append(
        {"type": "evidence", "id": "evd-2", "action": "deploy", "success": False}
    )
    s3["weird"] = {"u": 1}
    return [
        (s0, "Plan drafted"),
        (s1, "task 42 added"),
        (s2, "task 42 started"),
        (s3, "phase done; vault down"),
    ]


def build_history(store_dir: Path) -> list[str]:
    """Commit the four checkpoints (10:00 .. 13:00) to ``main``; their checkpoint ids."""
    with Store.open(store_dir) as store:
        return [
            store.commit(state, notes=notes, created_at=at(10 + i)).checkpoint_id
            for i, (state, notes) in enumerate(history_states())
        ]


@pytest.fixture
def hist(store_dir: Path) -> list[str]:
    return build_history(store_dir)


def run_in(store_dir: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return ckpt("--store", str(store_dir), *args, env=env)


def out(store_dir: Path, *args: str) -> str:
    return ok(run_in(store_dir, *args)).stdout


def as_json(store_dir: Path, *args: str) -> Any:
    return json.loads(out(store_dir, *args, "--json"))


def diff_pair(store_dir: Path, old: dict[str, Any], new: dict[str, Any], *args: str) -> str:
    """Commit ``old`` then ``new``; the plain ``ckpt diff ARGS`` between them."""
    with Store.open(store_dir) as store:
        store.commit(old, notes="old", created_at=at(10))
        store.commit(new, notes="new", created_at=at(11))
    return out(store_dir, "diff", *args)


def library_diff(store_dir: Path, old: str, new: str) -> list[dict[str, Any]]:
    with Store.open(store_dir) as store:
        return [c.to_dict() for c in store.diff(old, new)]


# --- diff: which checkpoints -------------------------------------------------------------


def test_diff_defaults_to_previous_vs_latest_of_the_current_session(
    store_dir: Path, hist: list[str]
) -> None:
    assert as_json(store_dir, "diff") == library_diff(store_dir, hist[2], hist[3])
    assert out(store_dir, "diff") == out(store_dir, "diff", hist[2], hist[3])


def test_diff_with_one_ref_compares_it_with_head(store_dir: Path, hist: list[str]) -> None:
    assert as_json(store_dir, "diff", "HEAD~3") == library_diff(store_dir, hist[0], hist[3])
    assert as_json(store_dir, "diff", hist[1]) == library_diff(store_dir, hist[1], hist[3])


def test_diff_two_refs_and_from_to_agree(store_dir: Path, hist: list[str]) -> None:
    want = library_diff(store_dir, hist[0], hist[2])
    assert as_json(store_dir, "diff", hist[0], hist[2]) == want
    assert as_json(store_dir, "diff", "--from", hist[0], "--to", hist[2]) == want
    assert as_json(store_dir, "diff", "--from", hist[0]) == library_diff(
        store_dir, hist[0], hist[3]
    )
    # Reversed order reverses the story: the task 42 that was added is now removed.
    back = as_json(store_dir, "diff", "--from", hist[2], "--to", hist[0])
    assert [(r["op"], r["key"]) for r in back if r["section"] == "tasks"] == [("removed", "42")]


def test_diff_session_option_uses_that_sessions_latest_two(
    store_dir: Path, hist: list[str]
) -> None:
    with Store.open(store_dir) as store:
        store.fork("exp", hist[1])
        store.commit(session="exp", variables={"x": 1}, created_at=at(14))
    got = as_json(store_dir, "diff", "--session", "exp")
    assert got == [{"section": "variables", "op": "added", "key": "x", "field": None, "new": 1}]
    # One ref with --session: that ref against the session's latest.
    assert as_json(store_dir, "diff", hist[0], "--session", "exp") == library_diff(
        store_dir, hist[0], "sessions/exp"
    )


def test_diff_across_two_unrelated_sessions(store_dir: Path) -> None:
    one = copy.deepcopy(SEED_STATE)
    other = copy.deepcopy(SEED_STATE) | {"session_id": "other", "agent_tier": 3}
    other["tasks"][0]["status"] = "failed"
    with Store.open(store_dir) as store:
        store.commit(one, created_at=at(10))
        store.commit(other, session="other", created_at=at(11))
        assert store.get_commit("other").parents == ()  # no shared history at all
    got = as_json(store_dir, "diff", "main", "other")
    assert got == library_diff(store_dir, "main", "other")
    assert [(c["section"], c["key"], c.get("field")) for c in got] == [
        ("tasks", "1", "status"),
        ("meta", "agent_tier", None),
    ]
    text = out(store_dir, "diff", "main", "other")
    assert '~ 1 status: "completed" -> "failed"' in text
    assert "~ agent_tier: 1 -> 3" in text


# --- diff: output modes --------------------------------------------------------------------


def test_diff_stat_counts_entries_per_section(store_dir: Path, hist: list[str]) -> None:
    assert out(store_dir, "diff", "--stat").splitlines() == [
        "phase           1 changed",
        "tasks           1 changed",
        "dependencies    1 changed",
        "variables       1 added, 1 removed, 1 changed",
        "recent outputs  1 added",
        "meta            1 added",
        "9 changes",
    ]
    # Task 42 changed two fields between HEAD~2 and HEAD: one entry, two records.
    stat = out(store_dir, "diff", "HEAD~2", "--stat", "--section", "tasks").splitlines()
    assert stat == ["tasks           1 changed", "2 changes"]
    assert out(store_dir, "diff", "HEAD", "HEAD", "--stat").strip() == "no changes"


_REQUIRED = ("section", "op", "key", "field")
_ALLOWED = {*_REQUIRED, "old", "new", "old_index", "new_index"}


def check_schema(record: dict[str, Any]) -> None:
    """One record against the table in docs/diff.md."""
    assert set(record) <= _ALLOWED, record
    assert all(name in record for name in _REQUIRED), record
    assert record["section"] in SECTIONS
    assert record["op"] in ("added", "removed", "changed", "moved")
    assert record["key"] is None or isinstance(record["key"], str)
    assert record["field"] is None or isinstance(record["field"], str)
    assert ("old" in record) == (record["op"] != "added"), record
    assert ("new" in record) == (record["op"] != "removed"), record
    if record["section"] not in LIST_SECTIONS:
        assert "old_index" not in record, record
        assert "new_index" not in record, record
    for index in ("old_index", "new_index"):
        assert index not in record or type(record[index]) is int, record
    if record["op"] == "added":
        assert "old_index" not in record, record
    if record["op"] == "removed":
        assert "new_index" not in record, record


def test_diff_json_follows_the_documented_schema_and_equals_the_library(
    store_dir: Path, hist: list[str]
) -> None:
    for old, new in [(hist[0], hist[3]), (hist[3], hist[0]), (hist[1], hist[2])]:
        records = as_json(store_dir, "diff", old, new)
        assert records == library_diff(store_dir, old, new)
        for record in records:
            check_schema(record)
        order = [SECTIONS.index(r["section"]) for r in records]
        assert order == sorted(order)
    records = as_json(store_dir, "diff", hist[0], hist[3])
    added_task = next(r for r in records if r["section"] == "tasks" and r["op"] == "added")
    assert added_task == {
        "section": "tasks", "op": "added", "key": "42", "field": None,
        "new": history_states()[3][0]["tasks"][2], "new_index": 2,
    }  # fmt: skip
    changed_var = next(r for r in records if r["key"] == "plan")
    assert changed_var == {
        "section": "variables", "op": "changed", "key": "plan", "field": None,
        "old": "draft", "new": LONG_PLAN,
    }  # fmt: skip
    # --json never shortens and never folds re-checks.
    assert any(r["field"] == "last_checked" for r in as_json(store_dir, "diff", hist[1], hist[2]))


def test_diff_json_whole_section_appearing_is_one_record_without_indexes(
    store_dir: Path,
) -> None:
    old = {"session_id": "main", "variables": {"a": 1}}
    new = {**old, "tasks": [{"id": "1", "status": "pending"}]}
    diff_pair(store_dir, old, new)
    records = as_json(store_dir, "diff")
    assert records == [
        {"section": "tasks", "op": "added", "key": None, "field": None, "new": new["tasks"]}
    ]


def test_diff_json_reproduces_the_example_in_the_docs(store_dir: Path) -> None:
    block = re.search(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    documented = json.loads(block.group(1))

    def output(n: int, action: str = "vault") -> dict[str, Any]:
        return {"type": "evidence", "id": f"evd-{n:05d}", "action": action, "success": True}

    tasks = [
        {"id": str(i), "subject": f"task {i}", "status": "completed" if i < 7 else "pending",
         "owner": None}
        for i in range(1, 11)
    ]  # fmt: skip
    tasks[6] |= {"status": "in_progress", "owner": "agent-7"}
    old = {
        "session_id": "main",
        "tasks": tasks,
        "dependencies": [
            {"name": "vault", "type": "service", "status": "available",
             "last_checked": "2026-01-23T12:00:00+00:00"}
        ],
        "variables": {"step": 41},
        "recent_outputs": [output(n) for n in range(22, 42)],
    }  # fmt: skip
    new = copy.deepcopy(old)
    new["tasks"][6]["status"] = "completed"
    new["tasks"][7] |= {"status": "in_progress", "owner": "agent-7"}
    new["dependencies"][0]["last_checked"] = "2026-01-23T12:01:00+00:00"
    new["variables"]["step"] = 42
    new["recent_outputs"] = [*old["recent_outputs"][1:], output(42, "ledger")]
    diff_pair(store_dir, old, new)
    assert as_json(store_dir, "diff") == documented


def test_diff_exit_code_is_one_with_differences_and_zero_without(
    store_dir: Path, hist: list[str]
) -> None:
    with_changes = run_in(store_dir, "diff", "--exit-code")
    assert with_changes.exit_code == 1
    assert "phase (1 changed)" in with_changes.stdout
    assert with_changes.stderr == ""
    assert run_in(store_dir, "diff", "--exit-code", "--json").exit_code == 1
    same = ok(run_in(store_dir, "diff", "HEAD", hist[3], "--exit-code"))
    assert same.stdout.strip() == "no changes"
    same_json = ok(run_in(store_dir, "diff", "--exit-code", "--json", "HEAD", "HEAD"))
    assert same_json.stdout.strip() == "[]"
    # Filtered away: what is left decides (HEAD~2 -> HEAD~1 touches no variable).
    filtered = ok(run_in(store_dir, "diff", "HEAD~2", "HEAD~1", "--section", "vars", "--exit-code"))
    assert filtered.stdout.strip() == "no changes"
    meta = run_in(store_dir, "diff", "HEAD~2", "HEAD~1", "--section", "meta", "--exit-code")
    assert meta.exit_code == 1
    # Without --exit-code a diff with changes succeeds.
    ok(run_in(store_dir, "diff"))


@pytest.mark.parametrize(
    ("given", "sections"),
    [
        ("tasks,variables", {"tasks", "variables"}),
        ("outputs", {"recent_outputs"}),
        ("recent_outputs", {"recent_outputs"}),
        ("deps,vars", {"dependencies", "variables"}),
        (" meta , phase ", {"meta", "phase"}),
    ],
)
def test_diff_section_filters_by_name_and_alias(
    store_dir: Path, hist: list[str], given: str, sections: set[str]
) -> None:
    everything = library_diff(store_dir, hist[0], hist[3])
    got = as_json(store_dir, "diff", "HEAD~3", "--section", given)
    assert got == [r for r in everything if r["section"] in sections]
    assert {r["section"] for r in got} == sections  # the fixture touches every section
    text = out(store_dir, "diff", "HEAD~3", "--section", given)
    headers = {line.split(" (")[0] for line in text.splitlines() if not line.startswith(" ")}
    assert headers == {s.replace("_", " ") for s in sections}


def test_diff_shortens_long_values_unless_full(store_dir: Path, hist: list[str]) -> None:
    short = out(store_dir, "diff", "--section", "variables")
    line = next(x for x in short.splitlines() if "plan" in x)
    assert re.search(r"… \(\+\d+ chars\)", line), line
    assert LONG_PLAN not in short
    assert len(line) < 120
    full = out(store_dir, "diff", "--section", "variables", "--full")
    assert f'  ~ plan: "v2" -> {json.dumps(LONG_PLAN)}' in full.splitlines()
    assert "…" not in full


def test_diff_folds_last_checked_only_changes_unless_all(store_dir: Path) -> None:
    deps = [
        {"name": n, "type": "service", "status": "available", "last_checked": at(10)}
        for n in ("vault", "db", "queue")
    ]
    old = {"session_id": "main", "dependencies": deps}
    new = copy.deepcopy(old)
    new["dependencies"][0]["last_checked"] = at(11)
    new["dependencies"][1]["last_checked"] = at(11)
    folded = diff_pair(store_dir, old, new)
    assert folded.splitlines() == [
        "dependencies (2 changed)",
        "  · 2 dependencies re-checked (last_checked only; --all shows them)",
    ]
    every = out(store_dir, "diff", "--all").splitlines()
    assert every == [
        "dependencies (2 changed)",
        f'  ~ vault last_checked: "{at(10)}" -> "{at(11)}"',
        f'  ~ db last_checked: "{at(10)}" -> "{at(11)}"',
    ]
    assert len(as_json(store_dir, "diff")) == 2


def test_diff_does_not_call_a_dependency_that_went_down_a_last_checked_only_change(
    store_dir: Path,
) -> None:
    """A dependency whose status changed was not merely re-checked: its last_checked
    change must not be hidden behind the 'last_checked only' summary line."""
    dep = {"name": "vault", "type": "service", "status": "available", "last_checked": at(10)}
    old = {"session_id": "main", "dependencies": [dep]}
    new = {"session_id": "main", "dependencies": [dep | {"status": "down", "last_checked": at(11)}]}
    text = diff_pair(store_dir, old, new)
    assert '  ~ vault status: "available" -> "down"' in text.splitlines()
    assert "last_checked only" not in text, text
    assert "vault last_checked" in text, text


# --- diff: color ---------------------------------------------------------------------------


class FakeTerminal:
    def isatty(self) -> bool:
        return True


class FakePipe:
    def isatty(self) -> bool:
        return False


def test_use_color_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(FakeTerminal()) is True
    assert use_color(FakePipe()) is False
    assert use_color(object()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(FakeTerminal()) is False


def test_render_changes_paints_only_when_asked(
    store_dir: Path, hist: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    with Store.open(store_dir) as store:
        changes = store.diff("HEAD~3", "HEAD")
    plain = render_changes(changes)
    painted = render_changes(changes, color=True)
    assert not ANSI.search(plain)
    assert ANSI.search(painted)
    assert ANSI.sub("", painted) == plain


def test_diff_in_a_pipe_is_plain(store_dir: Path, hist: list[str]) -> None:
    text = out(store_dir, "diff", "HEAD~3", "--all")
    assert "\x1b" not in text
    assert text.startswith("phase (1 changed)\n")


def run_on_terminal(store_dir: Path, *args: str, env: dict[str, str]) -> str:
    """Run the real ``ckpt`` with its stdout on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.Popen(
        [str(CKPT_SCRIPT), "--store", str(store_dir), *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL,
        env=environ | {"TERM": "xterm-256color"} | env,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_diff_on_a_real_terminal_is_colored_unless_no_color(
    store_dir: Path, hist: list[str]
) -> None:
    painted = run_on_terminal(store_dir, "diff", env={})
    assert ANSI.search(painted), painted
    plain = run_on_terminal(store_dir, "diff", env={"NO_COLOR": "1"})
    assert not ANSI.search(plain), plain
    assert "phase (1 changed)" in plain


# --- diff: each section in words ------------------------------------------------------------


def test_diff_renders_phase_field_changes(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE)
    new = copy.deepcopy(SEED_STATE)
    new["phase"] |= {"name": "Phase 6: Shipping", "number": 6, "status": "pending"}
    new["phase"].pop("notes")
    new["phase"]["owner"] = "agent-7"
    assert diff_pair(store_dir, old, new).splitlines() == [
        "phase (1 added, 3 changed, 1 removed)",
        '  ~ name: "Phase 5: Agent Bootstrapping" -> "Phase 6: Shipping"',
        '  - notes "Working on checkpoint skill"',
        "  ~ number: 5 -> 6",
        '  + owner "agent-7"',
        '  ~ status: "in_progress" -> "pending"',
    ]


def test_diff_renders_a_whole_phase_replacement_with_old_and_new(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE)
    new = copy.deepcopy(SEED_STATE) | {"phase": None}
    text = diff_pair(store_dir, old, new, "--section", "phase")
    assert text.splitlines()[0] == "phase (1 changed)"
    line = text.splitlines()[1]
    assert "Phase 5" in line, line  # what the phase was, not only what it became
    assert line.endswith("-> null"), line


def test_diff_renders_task_changes_field_by_field(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE)
    old["tasks"].append({"id": "3", "subject": "Old one", "status": "pending"})
    new = copy.deepcopy(SEED_STATE)
    new["tasks"][0] |= {"subject": "Create the module", "blocks": ["2"]}
    new["tasks"][1] |= {"status": "pending", "owner": None, "blocked_by": []}
    new["tasks"].append({"id": "42", "subject": "Ship", "status": "pending"})
    text = diff_pair(store_dir, old, new)
    assert text.splitlines() == [
        "tasks (1 added, 2 changed, 1 removed)",
        '  ~ 1 blocks: [] -> ["2"]',
        '  ~ 1 subject: "Create checkpoint module" -> "Create the module"',
        '  ~ 2 blocked_by: ["1"] -> []',
        '  ~ 2 owner: "agent-7" -> null',
        '  ~ 2 status: "in_progress" -> "pending"',
        '  - 3 "Old one" [pending]',
        '  + 42 "Ship" [pending]',
    ]


def test_diff_renders_status_pending_to_in_progress(store_dir: Path, hist: list[str]) -> None:
    text = out(store_dir, "diff", "HEAD~2", "HEAD~1", "--section", "tasks")
    assert text.splitlines() == ["tasks (1 changed)", '  ~ 42 status: "pending" -> "in_progress"']


def test_diff_labels_tasks_without_an_id_by_position(store_dir: Path) -> None:
    old = {"session_id": "main", "tasks": [{"subject": "first", "status": "pending"}]}
    new = {"session_id": "main", "tasks": [{"subject": "other", "status": "pending"}]}
    lines = diff_pair(store_dir, old, new).splitlines()
    assert lines == [
        "tasks (1 added, 1 removed)",
        '  - #0 "first" [pending]',
        '  + #0 "other" [pending]',
    ]


def test_diff_renders_dependency_changes(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE)
    old["dependencies"].append({"name": "old-db", "type": "database", "status": "available"})
    new = copy.deepcopy(SEED_STATE)
    new["dependencies"][0] |= {"status": "unavailable", "endpoint": "https://127.0.0.1:8201"}
    new["dependencies"].append(
        {"name": "queue", "type": "service", "status": "available", "endpoint": "amqp://q"}
    )
    assert diff_pair(store_dir, old, new).splitlines() == [
        "dependencies (1 added, 1 changed, 1 removed)",
        '  ~ vault endpoint: "https://127.0.0.1:8200" -> "https://127.0.0.1:8201"',
        '  ~ vault status: "available" -> "unavailable"',
        "  - old-db (database) available",
        "  + queue (service) available amqp://q",
    ]


def test_diff_renders_variable_changes_with_old_and_new(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE) | {"variables": {"gone": [1, 2], "kept": 1, "step": 41}}
    new = copy.deepcopy(SEED_STATE) | {"variables": {"kept": 1, "new": {"a": None}, "step": 42}}
    assert diff_pair(store_dir, old, new).splitlines() == [
        "variables (1 added, 1 changed, 1 removed)",
        "  - gone [1, 2]",
        '  + new {"a": null}',
        "  ~ step: 41 -> 42",
    ]


def test_diff_renders_outputs_appended_and_dropped(store_dir: Path) -> None:
    def output(n: int, ok: bool = True) -> dict[str, Any]:
        return {"type": "evidence", "id": f"evd-{n}", "action": "scan", "success": ok}

    old = {"session_id": "main", "recent_outputs": [output(1), output(2)]}
    new = {"session_id": "main", "recent_outputs": [output(2), output(3, ok=False)]}
    assert diff_pair(store_dir, old, new).splitlines() == [
        "recent outputs (1 added, 1 removed)",
        "  - [0] evidence scan evd-1 ok",
        "  + [1] evidence scan evd-3 failed",
    ]


def test_diff_renders_meta_changes(store_dir: Path) -> None:
    old = copy.deepcopy(SEED_STATE) | {"legacy": True}
    new = copy.deepcopy(SEED_STATE) | {"agent_tier": 2, "active_task_id": "1", "extra": [1]}
    new.pop("agent_id")
    new["phases_completed"] = [1, 2, 3, 4, 5]
    assert diff_pair(store_dir, old, new).splitlines() == [
        "meta (1 added, 3 changed, 2 removed)",
        '  ~ active_task_id: "2" -> "1"',
        '  - agent_id "my-agent"',
        "  ~ agent_tier: 1 -> 2",
        "  + extra [1]",
        "  - legacy true",
        "  ~ phases_completed: [1, 2, 3, 4] -> [1, 2, 3, 4, 5]",
    ]


# --- log ---------------------------------------------------------------------------------


def test_log_oneline(store_dir: Path, hist: list[str]) -> None:
    assert out(store_dir, "log", "--oneline").splitlines() == [
        f"{hist[3]} [main] phase done; vault down",
        f"{hist[2]} [main] task 42 started",
        f"{hist[1]} [main] task 42 added",
        f"{hist[0]} [main] Plan drafted",
    ]


def test_log_all_merges_sessions_by_time_listing_shared_checkpoints_once(
    store_dir: Path, hist: list[str]
) -> None:
    with Store.open(store_dir) as store:
        store.fork("exp", hist[1])
        f1 = store.commit(session="exp", variables={"x": 1}, notes="fork 1", created_at=at(11, 30))
        f2 = store.commit(session="exp", variables={"x": 2}, notes="fork 2", created_at=at(12, 30))
        store.fork("late", hist[2])  # a second fork with no checkpoints of its own
    ids = [e["checkpoint_id"] for e in as_json(store_dir, "log", "--all")]
    assert ids == [hist[3], f2.checkpoint_id, hist[2], f1.checkpoint_id, hist[1], hist[0]]
    lines = out(store_dir, "log", "--all", "--oneline").splitlines()
    assert lines[1] == f"{f2.checkpoint_id} [exp] fork 2"
    assert len(lines) == 6
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "--all", "-n", "2")] == ids[:2]
    # Without --all, only the current session (main) and its history.
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log")] == hist[::-1]
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "--session", "exp")] == [
        f2.checkpoint_id, f1.checkpoint_id, hist[1], hist[0]
    ]  # fmt: skip


def test_log_grep_matches_notes(store_dir: Path, hist: list[str]) -> None:
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "--grep", "task 42")] == [
        hist[2], hist[1]
    ]  # fmt: skip
    assert out(store_dir, "log", "--grep", "vault down", "--oneline").splitlines() == [
        f"{hist[3]} [main] phase done; vault down"
    ]
    assert as_json(store_dir, "log", "--grep", "no such words") == []


def test_log_since_and_until_take_iso_times(store_dir: Path, hist: list[str]) -> None:
    def ids(*args: str) -> list[str]:
        return [e["checkpoint_id"] for e in as_json(store_dir, "log", *args)]

    assert ids("--since", "2026-01-23T11:00:00+00:00") == [hist[3], hist[2], hist[1]]
    assert ids("--since", "2026-01-23T10:30:00") == [hist[3], hist[2], hist[1]]  # naive is UTC
    assert ids("--until", "2026-01-23T11:00:00Z") == [hist[1], hist[0]]
    assert ids("--since", at(10, 30), "--until", at(12, 30)) == [hist[2], hist[1]]
    assert ids("--since", "2026-01-23T13:00:00+01:00") == [hist[3], hist[2]]  # 12:00 UTC


def test_log_since_and_until_take_durations(store_dir: Path) -> None:
    now = datetime.now(UTC)
    ages = {"10m": timedelta(minutes=10), "90m": timedelta(minutes=90),
            "2d": timedelta(days=2), "10d": timedelta(days=10)}  # fmt: skip
    ids = {}
    with Store.open(store_dir) as store:
        for name, age in sorted(ages.items(), key=lambda kv: -kv[1]):
            moment = (now - age).isoformat(timespec="seconds")
            ids[name] = store.commit(variables={"age": name}, created_at=moment).checkpoint_id

    def got(*args: str) -> list[str]:
        return [e["checkpoint_id"] for e in as_json(store_dir, "log", *args)]

    assert got("--since", "30m") == [ids["10m"]]
    assert got("--since", "2h") == [ids["10m"], ids["90m"]]
    assert got("--since", "3d") == [ids["10m"], ids["90m"], ids["2d"]]
    assert got("--since", "1w") == [ids["10m"], ids["90m"], ids["2d"]]
    assert got("--until", "1w") == [ids["10d"]]
    assert got("--since", "3d", "--until", "1h") == [ids["90m"], ids["2d"]]
    assert got("--since", "2h", "--all") == [ids["10m"], ids["90m"]]


def key_ids(found: list[dict[str, Any]]) -> list[str]:
    return [entry["checkpoint_id"] for entry in found]


def test_log_key_variable_lists_only_checkpoints_that_changed_it(
    store_dir: Path, hist: list[str]
) -> None:
    found = as_json(store_dir, "log", "--key", "variables.plan")
    assert key_ids(found) == [hist[3], hist[1], hist[0]]
    assert [e["changes"] for e in found] == [
        [{"section": "variables", "op": "changed", "key": "plan", "field": None,
          "old": "v2", "new": LONG_PLAN}],
        [{"section": "variables", "op": "changed", "key": "plan", "field": None,
          "old": "draft", "new": "v2"}],
        [{"section": "variables", "op": "added", "key": "plan", "field": None, "new": "draft"}],
    ]  # fmt: skip
    with Store.open(store_dir) as store:
        library = store.history("variables.plan")
    assert found == [
        {**k.commit.to_dict(), "changes": [c.to_dict() for c in k.changes]} for k in library
    ]
    text = out(store_dir, "log", "--key", "variables.plan").splitlines()
    assert text[0] == f"{hist[3]}  2026-01-23 13:00:00  [main]"
    assert text[1].startswith('    ~ plan: "v2" -> "final plan: ')
    assert text[-2:] == [f"{hist[0]}  2026-01-23 10:00:00  [main]", '    + plan "draft"']
    assert key_ids(as_json(store_dir, "log", "--key", 'variables."a.b"')) == [hist[3]]


def test_log_key_task_and_task_field(store_dir: Path, hist: list[str]) -> None:
    assert key_ids(as_json(store_dir, "log", "--key", "tasks.42")) == [hist[3], hist[2], hist[1]]
    # The owner-only change at HEAD is not a change of tasks.42.status.
    status = as_json(store_dir, "log", "--key", "tasks.42.status")
    assert key_ids(status) == [hist[2], hist[1]]
    assert status[0]["changes"] == [
        {"section": "tasks", "op": "changed", "key": "42", "field": "status",
         "old": "pending", "new": "in_progress", "old_index": 2, "new_index": 2}
    ]  # fmt: skip
    assert out(store_dir, "log", "--key", "tasks.42", "--oneline").splitlines() == [
        f'{hist[3]} ~ 42 owner: null -> "agent-7"',
        f'{hist[2]} ~ 42 status: "pending" -> "in_progress"',
        f'{hist[1]} + 42 "Ship it" [pending]',
    ]


def test_log_key_phase_and_meta_fields(store_dir: Path, hist: list[str]) -> None:
    phase = as_json(store_dir, "log", "--key", "phase")
    assert key_ids(phase) == [hist[3], hist[0]]
    assert phase[0]["changes"][0] | {} == {
        "section": "phase", "op": "changed", "key": None, "field": "status",
        "old": "in_progress", "new": "completed",
    }  # fmt: skip
    tier = as_json(store_dir, "log", "--key", "agent_tier")
    assert key_ids(tier) == [hist[2], hist[0]]
    assert tier[0]["changes"] == [
        {"section": "meta", "op": "changed", "key": "agent_tier", "field": None, "old": 1, "new": 2}
    ]
    assert key_ids(as_json(store_dir, "log", "--key", "meta.active_task_id")) == [hist[2], hist[0]]
    assert out(store_dir, "log", "--key", "agent_tier", "--oneline").splitlines() == [
        f"{hist[2]} ~ agent_tier: 1 -> 2",
        f"{hist[0]} + agent_tier 1",
    ]


def test_log_key_limit_start_and_nothing_found(store_dir: Path, hist: list[str]) -> None:
    assert key_ids(as_json(store_dir, "log", "--key", "variables.plan", "-n", "1")) == [hist[3]]
    assert key_ids(as_json(store_dir, "log", "HEAD~1", "--key", "variables.plan")) == [
        hist[1], hist[0]
    ]  # fmt: skip
    assert out(store_dir, "log", "--key", "variables.never").strip() == (
        "no checkpoint changed that value"
    )
    assert as_json(store_dir, "log", "--key", "variables.never") == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [(("--grep", "added"), [1]), (("--since", at(11, 30)), [3]), (("--until", at(10, 30)), [0])],
)
def test_log_key_honours_the_other_filters(
    store_dir: Path, hist: list[str], extra: tuple[str, ...], expected: list[int]
) -> None:
    """--key with --grep/--since/--until: the filters apply (or the command refuses them);
    they must not be silently dropped."""
    result = run_in(store_dir, "log", "--key", "variables.plan", "--json", *extra)
    if result.exit_code == 2:
        return  # refused as a usage error: acceptable
    assert key_ids(json.loads(ok(result).stdout)) == [hist[i] for i in expected]


# --- show REF:PATH -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "load"])
def test_show_ref_path_prints_one_value(store_dir: Path, hist: list[str], command: str) -> None:
    states = [s for s, _ in history_states()]

    def show(spec: str, *args: str) -> str:
        return out(store_dir, command, spec, *args)

    assert show("HEAD:variables.plan") == LONG_PLAN + "\n"  # a string prints raw
    assert show("HEAD~3:variables.plan") == "draft\n"
    assert show("HEAD~3:variables.plan", "--json") == '"draft"\n'
    assert json.loads(show("HEAD~3:tasks")) == states[0]["tasks"]
    assert json.loads(show("HEAD~3:tasks", "--json")) == states[0]["tasks"]
    assert show(f"{hist[2]}:tasks.42.status") == "in_progress\n"
    assert show(f"{hist[1]}:tasks.42.status") == "pending\n"
    assert show("HEAD:dependencies.vault.status") == "unavailable\n"
    assert json.loads(show("HEAD:recent_outputs.0")) == states[3]["recent_outputs"][0]
    assert json.loads(show("HEAD:recent_outputs.1")) == states[3]["recent_outputs"][1]
    assert show("HEAD:phase.name") == "Phase 5: Agent Bootstrapping\n"
    assert show("HEAD:agent_tier") == "2\n"
    assert show("HEAD~3:agent_tier") == "1\n"
    assert show("HEAD:checkpoint_id") == f"{hist[3]}\n"
    assert show("HEAD~1:checkpoint_id") == f"{hist[2]}\n"
    assert show('HEAD:variables."a.b"') == "1\n"
    assert json.loads(show("HEAD:weird")) == {"u": 1}
    assert show("HEAD:meta.weird.u") == "1\n"
    assert show("HEAD:tasks.1.blocked_by", "--json") == "[]\n"
    assert json.loads(show("HEAD:variables")) == states[3]["variables"]
    assert show(":agent_tier") == "2\n"  # REF defaults to HEAD


def test_show_ref_path_accepts_every_kind_of_ref(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "tag", "drafted", hist[0]))
    for ref in (hist[0], "main~3", "sessions/main~3", "drafted", "tags/drafted", "HEAD^^^"):
        assert out(store_dir, "show", f"{ref}:variables.plan") == "draft\n", ref


# --- sessions ---------------------------------------------------------------------------------


def test_session_new_forks_without_copying_and_switches(store_dir: Path, hist: list[str]) -> None:
    objects, _, heads = store_counts(store_dir)
    said = out(store_dir, "session", "new", "exp", "--from", "HEAD~2")
    assert said.strip() == f"session exp starts at {hist[1]} (now current)"
    after_objects, _, after_heads = store_counts(store_dir)
    assert after_objects == objects  # O(1): a new ref, no new object
    assert after_heads == heads | {"exp": after_heads["exp"]}
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log")] == [hist[1], hist[0]]
    assert out(store_dir, "show", "HEAD:checkpoint_id").strip() == hist[1]
    with Store.open(store_dir) as store:
        assert store.current_session == "exp"


def test_session_new_no_switch_keeps_the_current_session(store_dir: Path, hist: list[str]) -> None:
    got = as_json(store_dir, "session", "new", "side", "--from", hist[0], "--no-switch")
    assert got["session"] == "side"
    assert got["current"] is False
    assert got["head"]["checkpoint_id"] == hist[0]
    with Store.open(store_dir) as store:
        assert store.current_session == "main"
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "--session", "side")] == [hist[0]]
    # Without --from, the fork starts at HEAD.
    ok(run_in(store_dir, "session", "new", "here", "--no-switch"))
    assert out(store_dir, "show", "here:checkpoint_id").strip() == hist[3]


def test_commits_after_a_fork_go_to_the_new_session(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "session", "new", "exp", "--from", "HEAD~2"))
    new_id = out(store_dir, "commit", "--var", "x", "1", "-m", "on the fork").strip()
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log")] == [new_id, hist[1], hist[0]]
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "--session", "main")] == (
        hist[::-1]
    )
    assert out(store_dir, "show", "HEAD:variables.plan") == "v2\n"  # built on the fork point
    assert as_json(store_dir, "diff", "main~2", "exp") == [
        {"section": "variables", "op": "added", "key": "x", "field": None, "new": 1}
    ]


def test_load_then_commit_after_a_fork_goes_to_the_new_session(
    store_dir: Path, hist: list[str], tmp_path: Path
) -> None:
    """The agent's round trip (load the checkpoint, edit, commit it back) after time travel
    must continue the fork, not silently move the session it was forked from."""
    ok(run_in(store_dir, "session", "new", "exp", "--from", "HEAD~2"))
    state = as_json(store_dir, "load")
    state["variables"]["plan"] = "retry"
    ok(run_in(store_dir, "commit", "--state", str(write_json(tmp_path / "s.json", state))))
    with Store.open(store_dir) as store:
        assert store.get_commit("sessions/main").checkpoint_id == hist[3]
        assert store.get_commit("sessions/exp").parent_checkpoint_id == hist[1]


def test_session_list_shows_name_head_count_and_time(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "session", "new", "exp", "--from", "HEAD~2"))
    lines = out(store_dir, "session", "list").splitlines()
    assert len(lines) == 2
    exp = next(line for line in lines if " exp " in line)
    main = next(line for line in lines if " main " in line)
    assert exp.startswith("* ")
    assert main.startswith("  ")
    assert exp.split() == ["*", "exp", hist[1], "2", "checkpoints", "2026-01-23", "11:00:00"]
    assert main.split() == ["main", hist[3], "4", "checkpoints", "2026-01-23", "13:00:00"]
    listed = {s["name"]: s for s in as_json(store_dir, "session", "list")}
    assert listed == {
        "exp": {"name": "exp", "current": True, "checkpoints": 2, "head": hist[1],
                "last": at(11)},
        "main": {"name": "main", "current": False, "checkpoints": 4, "head": hist[3],
                 "last": at(13)},
    }  # fmt: skip


def test_session_switch_changes_what_head_names(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "session", "new", "exp", "--from", hist[0], "--no-switch"))
    assert out(store_dir, "session", "switch", "exp").strip() == "current session: exp"
    assert out(store_dir, "show", "HEAD:checkpoint_id").strip() == hist[0]
    assert [s["name"] for s in as_json(store_dir, "session", "list") if s["current"]] == ["exp"]
    ok(run_in(store_dir, "session", "switch", "main"))
    assert out(store_dir, "show", "HEAD:checkpoint_id").strip() == hist[3]


# --- tags -----------------------------------------------------------------------------------


def test_tag_names_a_checkpoint_and_lists_tags(store_dir: Path, hist: list[str]) -> None:
    assert out(store_dir, "tag", "drafted", "HEAD~3").strip() == f"tag drafted -> {hist[0]}"
    assert out(store_dir, "tag", "latest").strip() == f"tag latest -> {hist[3]}"
    listing = [
        f"{'drafted':<24} {hist[0]}  Plan drafted",
        f"{'latest':<24} {hist[3]}  phase done; vault down",
    ]
    assert out(store_dir, "tag").splitlines() == listing
    assert out(store_dir, "tag", "--list").splitlines() == listing
    assert out(store_dir, "tag", "-l").splitlines() == listing
    listed = as_json(store_dir, "tag", "--list")
    assert {name: info["checkpoint_id"] for name, info in listed.items()} == {
        "drafted": hist[0], "latest": hist[3]
    }  # fmt: skip
    assert listed["drafted"]["notes"] == "Plan drafted"
    made = as_json(store_dir, "tag", "mid", hist[1])
    assert made["tag"] == "mid"
    assert made["checkpoint"]["checkpoint_id"] == hist[1]


def test_tag_force_moves_and_delete_removes(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "tag", "v1", "HEAD~3"))
    objects = store_counts(store_dir)[0]
    assert out(store_dir, "tag", "v1", "HEAD", "--force").strip() == f"tag v1 -> {hist[3]}"
    assert out(store_dir, "show", "v1:checkpoint_id").strip() == hist[3]
    assert out(store_dir, "tag", "-d", "v1").strip() == "deleted tag v1"
    assert as_json(store_dir, "tag") == {}
    assert out(store_dir, "tag") == ""
    assert store_counts(store_dir)[0] == objects  # tags never write objects
    ok(run_in(store_dir, "tag", "v1", "HEAD~1"))  # the name is free again
    ok(run_in(store_dir, "tag", "--delete", "v1"))


def test_tags_are_refs_everywhere(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "tag", "before", "HEAD~3"))
    ok(run_in(store_dir, "tag", "after"))
    assert as_json(store_dir, "load", "before")["checkpoint_id"] == hist[0]
    assert as_json(store_dir, "load", "tags/after~1")["checkpoint_id"] == hist[2]
    assert as_json(store_dir, "diff", "before", "after") == library_diff(
        store_dir, hist[0], hist[3]
    )
    assert as_json(store_dir, "diff", "--from", "before", "--to", "after~2") == library_diff(
        store_dir, hist[0], hist[1]
    )
    assert [e["checkpoint_id"] for e in as_json(store_dir, "log", "after~1")] == hist[2::-1]
    assert key_ids(as_json(store_dir, "log", "after", "--key", "tasks.42.status")) == [
        hist[2], hist[1]
    ]  # fmt: skip
    assert out(store_dir, "show", "before:variables.plan") == "draft\n"
    ok(run_in(store_dir, "session", "new", "again", "--from", "before"))
    assert out(store_dir, "show", "HEAD:checkpoint_id").strip() == hist[0]
    # A tag keeps naming its checkpoint while the session moves on.
    with Store.open(store_dir) as store:
        store.commit(session="main", variables={"later": True})
    assert as_json(store_dir, "load", "after")["checkpoint_id"] == hist[3]
