"""The ``ckpt`` command line: every command's normal behaviour, through CliRunner and a few
real processes. Error paths live in ``test_cli_errors.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import given
from typer.testing import CliRunner, Result

from ckpt_cli import app
from ckptstore import CommitInfo, Store
from strategies import checkpoints, user_fields

CHECKPOINT_ID = re.compile(r"ckpt-\d{8}-\d{6}-[0-9a-f]{8}")
HEX64 = re.compile(r"[0-9a-f]{64}")
RUNNER = CliRunner()

SEED_STATE: dict[str, Any] = {
    "session_id": "main",
    "phase": {
        "name": "Phase 5: Agent Bootstrapping",
        "number": 5,
        "status": "in_progress",
        "started_at": "2026-01-23T10:00:00+00:00",
        "notes": "Working on checkpoint skill",
    },
    "phases_completed": [1, 2, 3, 4],
    "tasks": [
        {
            "id": "1",
            "subject": "Create checkpoint module",
            "status": "completed",
            "owner": None,
            "blocks": [],
            "blocked_by": [],
        },
        {
            "id": "2",
            "subject": "Write the CLI tests",
            "status": "in_progress",
            "owner": "agent-7",
            "blocks": [],
            "blocked_by": ["1"],
        },
    ],
    "active_task_id": "2",
    "dependencies": [
        {
            "name": "vault",
            "type": "service",
            "status": "available",
            "endpoint": "https://127.0.0.1:8200",
            "last_checked": "2026-01-23T12:00:00+00:00",
        }
    ],
    "variables": {"custom_key": "custom_value"},
    "recent_outputs": [
        {
            "type": "evidence",
            "id": "evd-20260123-1",
            "action": "terraform",
            "success": True,
            "timestamp": "2026-01-23T11:30:00+00:00",
        }
    ],
    "agent_id": "my-agent",
    "agent_tier": 1,
}


# --- helpers (also used by test_cli_errors.py) ------------------------------------------


def ckpt(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``ckpt ARGS`` in-process."""
    return RUNNER.invoke(app, list(args), input=input, env=env)


def ok(result: Result) -> Result:
    """Assert the command succeeded, showing what it said if not."""
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.exception is None
    return result


def assert_error(result: Result, code: int, *needles: str) -> str:
    """Assert a clean failure: exit ``code``, one ``error:`` line on stderr naming ``needles``."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def store_counts(store_dir: Path) -> tuple[int, int, dict[str, str]]:
    """Objects, reflog entries and session heads: what a failed command must leave alone."""
    with Store.open(store_dir) as store:
        heads = {name: str(oid) for name, oid in store.sessions().items()}
        return len(list(store.backend.iter_ids())), len(store.backend.reflog()), heads


def commit_json(
    store_dir: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``ckpt commit --json ARGS --store STORE_DIR``, parsed."""
    result = ok(ckpt("commit", "--json", "--store", str(store_dir), *args, input=input, env=env))
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def load_json(store_dir: Path, *args: str) -> dict[str, Any]:
    """``ckpt load --json ARGS --store STORE_DIR``, parsed."""
    loaded: dict[str, Any] = json.loads(
        ok(ckpt("load", "--json", "--store", str(store_dir), *args)).stdout
    )
    return loaded


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# --- init -------------------------------------------------------------------------------


def test_init_creates_a_store_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = ok(ckpt("init"))
    assert (tmp_path / ".ckpt" / "store.db").is_file()
    assert result.stdout.strip() == f"Initialized empty ckpt store in {tmp_path / '.ckpt'}"
    assert result.stderr == ""


def test_init_creates_a_store_in_the_given_directory(tmp_path: Path) -> None:
    ok(ckpt("init", str(tmp_path / "project" / "deep")))
    assert (tmp_path / "project" / "deep" / ".ckpt" / "store.db").is_file()


@pytest.mark.parametrize("placement", ["command", "global"])
def test_init_with_store_creates_the_store_in_exactly_that_directory(
    tmp_path: Path, placement: str
) -> None:
    target = tmp_path / "stores" / "mine"
    args = ["init", "--store", str(target)]
    ok(ckpt(*(args if placement == "command" else ["--store", str(target), "init"])))
    assert (target / "store.db").is_file()
    assert not (target / ".ckpt").exists()


def test_init_fast_durability_makes_a_usable_store(tmp_path: Path) -> None:
    ok(ckpt("init", str(tmp_path), "--durability", "fast"))
    ok(ckpt("commit", "--var", "a", "1", "--store", str(tmp_path)))
    assert load_json(tmp_path)["variables"] == {"a": 1}


# --- discovery --------------------------------------------------------------------------


def test_commands_find_the_store_from_a_subdirectory_several_levels_down(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = store_dir.parent / "src" / "pkg" / "mod"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    checkpoint_id = ok(ckpt("commit", "--var", "where", "deep")).stdout.strip()
    with Store.open(store_dir) as store:
        assert store.load()["checkpoint_id"] == checkpoint_id
    assert checkpoint_id in ok(ckpt("log")).stdout


def test_ckpt_store_environment_variable_names_the_store(store_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok(ckpt("commit", "--var", "a", "1", env={"CKPT_STORE": str(store_dir)}))
    assert load_json(store_dir)["variables"] == {"a": 1}


@pytest.mark.parametrize("placement", ["command", "global"])
def test_store_option_beats_the_environment_variable(tmp_path: Path, placement: str) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    Store.init(first).close()
    Store.init(second).close()
    store = ["--store", str(second)]
    args = ["commit", "--var", "which", "second"]
    argv = [*args, *store] if placement == "command" else [*store, *args]
    ok(ckpt(*argv, env={"CKPT_STORE": str(first)}))
    assert store_counts(first)[2] == {}, "the commit went to the CKPT_STORE store"
    assert load_json(second)["variables"] == {"which": "second"}


def test_store_option_may_name_the_project_directory_holding_ckpt(store_dir: Path) -> None:
    project = store_dir.parent
    ok(ckpt("commit", "--var", "a", "1", "--store", str(project)))
    assert load_json(project)["variables"] == {"a": 1}
    assert load_json(store_dir)["variables"] == {"a": 1}


# --- commit -----------------------------------------------------------------------------


def test_commit_prints_exactly_the_checkpoint_id(store_dir: Path) -> None:
    result = ok(ckpt("commit", "--var", "a", "1", "--store", str(store_dir)))
    assert CHECKPOINT_ID.fullmatch(result.stdout.removesuffix("\n"))
    assert result.stderr == ""


def test_commit_json_reports_checkpoint_id_object_id_and_session(store_dir: Path) -> None:
    info = commit_json(store_dir, "--var", "a", "1", "-s", "alpha")
    assert CHECKPOINT_ID.fullmatch(info["checkpoint_id"])
    assert HEX64.fullmatch(info["id"])
    assert info["checkpoint_id"].endswith(info["id"][:8])
    assert info["session"] == "alpha"


def test_commit_reads_the_state_from_a_file(store_dir: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "state.json", SEED_STATE)
    info = commit_json(store_dir, "--state", str(path))
    loaded = load_json(store_dir, info["checkpoint_id"])
    assert user_fields(loaded) == user_fields(SEED_STATE)


def test_commit_reads_the_state_from_stdin(store_dir: Path) -> None:
    info = commit_json(store_dir, "--state", "-", input=json.dumps(SEED_STATE))
    assert user_fields(load_json(store_dir, info["id"])) == user_fields(SEED_STATE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7", 7),
        ("true", True),
        ('"x"', "x"),
        ("hello world", "hello world"),
        ("007", "007"),
        ('{"a":[1]}', {"a": [1]}),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("null", None),
        ("1.5", 1.5),
        ("", ""),
    ],
)
def test_commit_var_value_is_json_when_it_parses_else_a_string(
    store_dir: Path, raw: str, expected: Any
) -> None:
    ok(ckpt("commit", "--var", "v", raw, "--store", str(store_dir)))
    value = load_json(store_dir)["variables"]["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_commit_var_repeats_and_merges_into_the_given_state(
    store_dir: Path, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "state.json", SEED_STATE)
    args = ["--state", str(path), "--var", "a", "1", "--var", "b", "[2]", "--var", "a", "3"]
    commit_json(store_dir, *args)
    variables = load_json(store_dir)["variables"]
    assert variables == {"custom_key": "custom_value", "a": 3, "b": [2]}


def test_commit_without_state_keeps_the_previous_state_and_adds_the_vars(
    store_dir: Path, tmp_path: Path
) -> None:
    first = commit_json(store_dir, "--state", str(write_json(tmp_path / "s.json", SEED_STATE)))
    second = commit_json(store_dir, "--var", "step", "2")
    loaded = load_json(store_dir)
    expected = user_fields(SEED_STATE)
    expected["variables"] = {"custom_key": "custom_value", "step": 2}
    assert user_fields(loaded) == expected
    assert loaded["checkpoint_id"] == second["checkpoint_id"]
    assert loaded["parent_checkpoint_id"] == first["checkpoint_id"]


def test_committing_an_identical_state_adds_a_commit_and_exactly_one_object(
    store_dir: Path, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "state.json", SEED_STATE)
    first = commit_json(store_dir, "--state", str(path))
    objects, reflog, _ = store_counts(store_dir)
    second = commit_json(store_dir, "--state", str(path))
    assert second["id"] != first["id"]
    assert store_counts(store_dir)[:2] == (objects + 1, reflog + 1)
    assert load_json(store_dir)["parent_checkpoint_id"] == first["checkpoint_id"]


def test_commit_notes_are_shown_in_log_and_load(store_dir: Path) -> None:
    ok(
        ckpt(
            "commit", "-m", "first line\nsecond line", "--var", "a", "1", "--store", str(store_dir)
        )
    )
    ok(ckpt("now", "--notes", "via the alias", "--store", str(store_dir)))
    log = [line.strip() for line in ok(ckpt("log", "--store", str(store_dir))).stdout.splitlines()]
    notes = [line for line in log if line and not CHECKPOINT_ID.match(line)]
    assert notes == ["via the alias", "first line", "second line"]
    assert log.index("via the alias") < log.index("first line")
    shown = ok(ckpt("show", "--store", str(store_dir))).stdout.splitlines()
    assert any(line.startswith("notes") and "via the alias" in line for line in shown)


def test_commit_session_option_and_environment_create_and_extend_a_session(
    store_dir: Path,
) -> None:
    ok(ckpt("commit", "--var", "a", "1", "--store", str(store_dir)))
    first = commit_json(store_dir, "--session", "feature/x", "--var", "f", "1")
    second = commit_json(store_dir, "--var", "f", "2", env={"CKPT_SESSION": "feature/x"})
    assert first["session"] == second["session"] == "feature/x"
    loaded = load_json(store_dir, "feature/x")
    assert loaded["parent_checkpoint_id"] == first["checkpoint_id"]
    assert loaded["variables"] == {"f": 2}  # a new session starts from an empty state
    assert load_json(store_dir)["variables"] == {"a": 1}  # HEAD still names main


def test_a_state_session_id_is_store_owned_and_does_not_pick_the_session(
    store_dir: Path, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "s.json", {**SEED_STATE, "session_id": "agent-42"})
    assert commit_json(store_dir, "--state", str(path))["session"] == "main"
    path = write_json(tmp_path / "t.json", {**SEED_STATE, "session_id": "a b"})  # not a name
    assert commit_json(store_dir, "--state", str(path), "--session", "agent-42")["session"] == (
        "agent-42"
    )
    assert load_json(store_dir, "agent-42")["session_id"] == "agent-42"


# --- load -------------------------------------------------------------------------------


def test_load_shows_a_readable_checkpoint(store_dir: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "state.json", SEED_STATE)
    checkpoint_id = ok(ckpt("commit", "--state", str(path), "--store", str(store_dir))).stdout
    out = ok(ckpt("load", "--store", str(store_dir))).stdout
    assert f"checkpoint  {checkpoint_id.strip()}" in out
    assert "Phase 5: Agent Bootstrapping" in out
    assert re.search(r"tasks \(2: 1 completed, 1 in_progress\)\s+active: 2", out)
    assert "Create checkpoint module" in out
    task_line = next(line for line in out.splitlines() if "Write the CLI tests" in line)
    assert "@agent-7" in task_line
    variable_line = next(line for line in out.splitlines() if "custom_key" in line)
    assert "custom_value" in variable_line
    assert "vault" in out


def test_load_json_gives_back_the_state_with_correct_store_owned_fields(
    store_dir: Path, tmp_path: Path
) -> None:
    parent = commit_json(store_dir, "--var", "a", "1")
    path = write_json(tmp_path / "state.json", SEED_STATE)
    info = commit_json(store_dir, "--state", str(path))
    loaded = load_json(store_dir)
    assert user_fields(loaded) == user_fields(SEED_STATE)
    assert loaded["checkpoint_id"] == info["checkpoint_id"]
    assert loaded["parent_checkpoint_id"] == parent["checkpoint_id"]
    assert HEX64.fullmatch(loaded["content_hash"])
    assert loaded["session_id"] == "main"
    assert isinstance(loaded["estimated_tokens"], int)
    assert loaded["estimated_tokens"] > 0
    stamp = loaded["created_at"]  # ckpt-YYYYMMDD-HHMMSS-… is created_at in UTC
    assert stamp.endswith("+00:00")
    day, time = stamp[:10].replace("-", ""), stamp[11:19].replace(":", "")
    assert info["checkpoint_id"].startswith(f"ckpt-{day}-{time}-")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CommitInfo]]:
    """A store with main: c0 ← c1 ← c2 and feature: f0 ← f1 (read-only for the tests)."""
    directory = tmp_path_factory.mktemp("history") / ".ckpt"
    commits: dict[str, CommitInfo] = {}
    with Store.init(directory) as store:
        for n in range(3):
            commits[f"c{n}"] = store.commit(variables={"n": n}, notes=f"main {n}")
        for n in range(2):
            commits[f"f{n}"] = store.commit(session="feature", variables={"f": n})
    return directory, commits


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("HEAD", "c2"),
        ("HEAD~1", "c1"),
        ("HEAD^", "c1"),
        ("HEAD~2", "c0"),
        ("HEAD^^", "c0"),
        ("HEAD~1~1", "c0"),
        ("main", "c2"),
        ("main~1", "c1"),
        ("feature", "f1"),
        ("feature~1", "f0"),
        ("sessions/feature", "f1"),
        ("sessions/main~2", "c0"),
        ("<checkpoint id of c1>", "c1"),
        ("<8 hex of c1>", "c1"),
        ("<full hex of f0>", "f0"),
        ("<8 hex of c2>~2", "c0"),
    ],
)
def test_load_resolves_every_ref_form(
    history: tuple[Path, dict[str, CommitInfo]], ref: str, expected: str
) -> None:
    directory, commits = history
    if ref.startswith("<"):
        what, name, rest = re.fullmatch(r"<(.+) of (\w+)>(.*)", ref).groups()  # type: ignore[union-attr]
        info = commits[name]
        base = {"checkpoint id": info.checkpoint_id, "8 hex": info.id[:8]}.get(what, info.id)
        ref = base + rest
    assert load_json(directory, ref)["checkpoint_id"] == commits[expected].checkpoint_id


def test_load_session_option_picks_that_session_latest(
    history: tuple[Path, dict[str, CommitInfo]],
) -> None:
    directory, commits = history
    loaded = load_json(directory, "--session", "feature")
    assert loaded["checkpoint_id"] == commits["f1"].checkpoint_id


# --- log --------------------------------------------------------------------------------


def _log_ids(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if CHECKPOINT_ID.match(line)]


def test_log_lists_newest_first_with_notes(history: tuple[Path, dict[str, CommitInfo]]) -> None:
    directory, commits = history
    out = ok(ckpt("log", "--store", str(directory))).stdout
    assert _log_ids(out) == [commits[n].checkpoint_id for n in ("c2", "c1", "c0")]
    assert "    main 1" in out.splitlines()


@pytest.mark.parametrize("option", ["--limit", "-n"])
def test_log_limit_caps_the_count(history: tuple[Path, dict[str, CommitInfo]], option: str) -> None:
    directory, commits = history
    out = ok(ckpt("list", option, "2", "--store", str(directory))).stdout
    assert _log_ids(out) == [commits["c2"].checkpoint_id, commits["c1"].checkpoint_id]


def test_log_session_option_lists_that_session(
    history: tuple[Path, dict[str, CommitInfo]],
) -> None:
    directory, commits = history
    out = ok(ckpt("log", "--session", "feature", "--store", str(directory))).stdout
    assert _log_ids(out) == [commits["f1"].checkpoint_id, commits["f0"].checkpoint_id]
    assert all("[feature]" in line for line in out.splitlines() if CHECKPOINT_ID.match(line))


def test_log_json_is_a_list_linked_by_parents(history: tuple[Path, dict[str, CommitInfo]]) -> None:
    directory, commits = history
    entries = json.loads(ok(ckpt("log", "--json", "--store", str(directory))).stdout)
    assert [e["id"] for e in entries] == [commits[n].id for n in ("c2", "c1", "c0")]
    for newer, older in itertools.pairwise(entries):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
        assert newer["parents"] == [older["id"]]
    assert entries[-1]["parent_checkpoint_id"] is None
    assert entries[-1]["parents"] == []
    assert [e["notes"] for e in entries] == ["main 2", "main 1", "main 0"]


@pytest.mark.parametrize("ref", ["HEAD~1", "main~1", "<c1>"])
def test_log_starts_at_a_ref(history: tuple[Path, dict[str, CommitInfo]], ref: str) -> None:
    directory, commits = history
    ref = commits["c1"].checkpoint_id if ref == "<c1>" else ref
    out = ok(ckpt("log", ref, "--store", str(directory))).stdout
    assert _log_ids(out) == [commits["c1"].checkpoint_id, commits["c0"].checkpoint_id]


# --- help -------------------------------------------------------------------------------

COMMANDS = ("init", "commit", "now", "load", "show", "log", "list", "demo")


def _all_commands() -> dict[str, Any]:
    """Every command, subcommands of groups (``session new``) included."""
    found: dict[str, Any] = {}
    pending = list(typer.main.get_command(app).commands.items())  # type: ignore[attr-defined]
    while pending:
        name, command = pending.pop()
        found[name] = command
        for sub, child in getattr(command, "commands", {}).items():
            pending.append((f"{name} {sub}", child))
    return found


def test_every_registered_command_has_help_and_the_basic_ones_exist() -> None:
    registered = _all_commands()
    assert set(COMMANDS) <= set(registered)
    for name, command in registered.items():
        assert command.get_short_help_str().strip(), f"{name} has no help text"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_exits_zero(name: str) -> None:
    result = ok(ckpt(name, "--help"))
    assert result.stdout.startswith("Usage: ")
    assert "--help" in result.stdout
    assert "--store" in result.stdout or name == "demo"


def test_top_level_help_lists_every_command() -> None:
    out = ok(ckpt("--help")).stdout
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", out, re.MULTILINE), name


# --- demo -------------------------------------------------------------------------------


def test_demo_builds_a_store_and_reports_its_size(tmp_path: Path) -> None:
    out = ok(ckpt("demo", "--dir", str(tmp_path), "--steps", "30", "--seed", "3")).stdout
    assert "$ ckpt log --limit 5" in out
    assert len(_log_ids(out.split("$ ckpt load")[0])) == 5
    assert "$ ckpt load HEAD~15" in out
    assert re.search(r"30 checkpoints, [\d.]+ \w+ of JSON given", out)
    assert re.search(r"= \d+x smaller than the JSON", out)
    with Store.open(tmp_path) as store:
        assert len(store.log(limit=None)) == 30
        assert store.load()["variables"]["step"] == 29


# --- property: the CLI round-trips any checkpoint ---------------------------------------


@given(state=checkpoints())
def test_commit_from_stdin_then_load_json_round_trips_user_fields(state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Store.init(Path(tmp), durability="fast").close()
        text = json.dumps(state)
        info = commit_json(Path(tmp), "--state", "-", input=text)
        loaded = load_json(Path(tmp), info["checkpoint_id"])
    assert user_fields(loaded) == state
    # Type-exact too (1 must not come back as 1.0 or True).
    assert json.dumps(user_fields(loaded), sort_keys=True) == json.dumps(state, sort_keys=True)


# --- the real entry points ---------------------------------------------------------------

CKPT_SCRIPT = Path(sys.executable).parent / "ckpt"


def run(
    argv: Sequence[str], *, input: str | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CKPT_STORE", "CKPT_SESSION")}
    return subprocess.run(
        list(argv), input=input, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("module", ["ckptstore", "ckpt_cli"])
def test_python_dash_m_shows_help(tmp_path: Path, module: str) -> None:
    done = run([sys.executable, "-m", module, "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "commit" in done.stdout
    assert "load" in done.stdout


def test_console_script_round_trips_a_checkpoint(tmp_path: Path) -> None:
    assert CKPT_SCRIPT.is_file(), f"no console script at {CKPT_SCRIPT}"
    assert run([str(CKPT_SCRIPT), "init"], cwd=tmp_path).returncode == 0
    done = run(
        [str(CKPT_SCRIPT), "commit", "--state", "-"], input=json.dumps(SEED_STATE), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    checkpoint_id = done.stdout.strip()
    assert CHECKPOINT_ID.fullmatch(checkpoint_id)
    shown = run([sys.executable, "-m", "ckptstore", "load", "--json", checkpoint_id], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert user_fields(json.loads(shown.stdout)) == user_fields(SEED_STATE)


def test_real_process_reports_an_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    done = run(
        [sys.executable, "-m", "ckptstore", "load", "--store", str(tmp_path / "no")], cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: no ckpt store in")
    Store.init(tmp_path / ".ckpt").close()
    bad = run([str(CKPT_SCRIPT), "commit", "--state", "-"], input="[1]", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ")
    assert len(bad.stderr.splitlines()) == 1


def test_the_entry_points_command_map_names_the_module_of_every_command() -> None:
    """`ckpt` imports only the module of the command it runs: the map must be exact."""
    import importlib

    import ckpt_cli
    from ckpt_cli import COMMANDS, _command

    top = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert set(COMMANDS) == set(top)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"ckpt_cli.{module}")
        callback = top[name].callback
        defined = {
            getattr(callback, "__module__", None),
            getattr(getattr(callback, "__wrapped__", None), "__module__", None),
        }
        assert mod.__name__ in defined or hasattr(top[name], "commands"), (name, module)
    assert _command(["--store", "x", "log", "-n", "1"]) == "log"
    assert _command(["--help"]) is None
    assert ckpt_cli.app is app


@pytest.mark.parametrize(
    "args", [["log", "--help"], ["--store", ".", "diff", "--help"], ["--help"]]
)
def test_the_console_script_runs_each_command_from_its_own_module(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ckpt_cli", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
