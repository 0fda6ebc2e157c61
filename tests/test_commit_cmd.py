"""``ckpt commit`` without typer (``ckpt_cli.commit_cmd``): same options, same results.

The console script runs a commit through :func:`ckpt_cli.commit_cmd.parse` and falls back
to the typer command for anything that parser leaves alone; these tests hold the two
paths to one behaviour: the option table against the typer command's, then the same
argument lists through ``ckpt_cli.main`` (the console script's function) and through the
typer app, compared by exit code, error line and the checkpoint stored.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import ckpt_cli
from ckpt_cli import app
from ckpt_cli.commit_cmd import OPTIONS, parse
from ckptstore import Store

RUNNER = CliRunner()
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|\d{8}-\d{6}")  # a time, an id made of one
CLEAN_ENV = ("CKPT_AGENT_ID", "CKPT_AGENT_TIER", "CKPT_SESSION_ID", "CKPT_STORE", "CKPT_SESSION")
STATE = {
    "phase": {"name": "Build", "number": 2, "status": "in_progress"},
    "tasks": [{"id": 1, "subject": "write it", "status": "pending"}],
    "variables": {"plan": "three steps", "n": 3},
}


def _typer_options(command: str) -> dict[str, tuple[str, int, bool, bool]]:
    # typer vendors click in some releases: read the parameters by their attributes
    found = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    table: dict[str, tuple[str, int, bool, bool]] = {}
    for param in found.params:
        assert param.param_type_name == "option", param
        nargs = 0 if param.is_flag else param.nargs
        is_int = type(param.type).__name__ == "IntParamType"
        for spelling in param.opts:
            table[spelling] = (str(param.name), nargs, bool(param.multiple), is_int)
    return table


@pytest.mark.parametrize("command", ["commit", "now"])
def test_the_fast_parser_knows_exactly_the_typer_commands_options(command: str) -> None:
    assert _typer_options(command) == OPTIONS


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["commit"], {"store": None}),
        (["--store", "s", "now", "-m", "x"], {"store": Path("s"), "notes": "x"}),
        (["--store=s", "commit", "--store", "t"], {"store": Path("t")}),
        (["commit", "--var", "a", "-5", "--var", "b", "--json"],
         {"var": [("a", "-5"), ("b", "--json")], "store": None}),
        (["commit", "--notes", "--json", "--phase-number=3"],
         {"notes": "--json", "phase_number": 3, "store": None}),
        (["commit", "-s", "a", "--session", "b"], {"session": "b", "store": None}),
        (["commit", "--task", "1=done", "--task=2=done"],
         {"task": ["1=done", "2=done"], "store": None}),
    ],
)  # fmt: skip
def test_parse(argv: list[str], expected: dict[str, Any]) -> None:
    assert parse(argv, environ={}) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["commit", "--help"],
        ["commit", "--"],
        ["commit", "extra"],
        ["commit", "--bogus"],
        ["commit", "--state"],
        ["commit", "--var", "only-key"],
        ["commit", "--phase-number", "two"],
        ["commit", "--json=yes"],
        ["commit", "-mnotes"],
        ["--help", "commit"],
        ["--store"],
        ["log"],
        [],
    ],
)
def test_parse_leaves_to_typer_what_it_does_not_handle(argv: list[str]) -> None:
    assert parse(argv, environ={}) is None


def test_environment_fills_session_and_store_unless_given() -> None:
    env = {"CKPT_SESSION": "from-env", "CKPT_STORE": "env-store"}
    assert parse(["commit"], environ=env) == {"session": "from-env", "store": Path("env-store")}
    given = parse(["--store", "g", "commit", "-s", "mine"], environ=env)
    assert given == {"session": "mine", "store": Path("g")}
    # click ignores an empty environment variable; so does the fast path
    assert parse(["commit"], environ={"CKPT_SESSION": "", "CKPT_STORE": ""}) == {"store": None}


# --- the two paths, side by side -----------------------------------------------------------


def _via_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str],
    stdin: str,
) -> tuple[int, str, str]:  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["ckpt", *args])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = 0
    try:
        ckpt_cli.main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    out, err = capsys.readouterr()
    # click names the program after `python -m pytest` here; the console script says ckpt
    return code, out, re.sub(r"see `[^`]*ckpt ", "see `ckpt ", err)


def _via_typer(args: list[str], stdin: str) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, args, input=stdin)
    return result.exit_code, result.stdout, result.stderr


CASES: list[list[str]] = [
    ["--var", "n", "4", "--var", "neg", "-5", "-m", "two vars"],
    ["--state", "STATE", "--json"],
    ["--state", "-", "--merge", "--var", "x", "[1, 2]"],
    ["--task-add", "second task", "--task", "1=completed", "--active-task", "1"],
    ["--phase", "Ship", "--phase-number=3", "--phase-status", "completed"],
    ["--output", "test:unit:ok", "--unset-var", "plan", "--no-probe"],
    ["--secret-var", "token", "s3cr3t-value", "--session", "other"],
    ["--notes", "--json"],
    # mistakes: each path must refuse them alike, in one line
    ["--merge"],
    ["--state", "MISSING"],
    ["--task", "no-equals"],
    ["--task", "99=done"],
    ["--var", "k", "1", "--secret-var", "k", "2"],
    ["--phase-number", "two"],
    ["--bogus"],
    ["positional"],
]


def _timeless(value: Any) -> Any:
    """``value`` with every timestamp (the commit's, a phase's, an output's id) blanked."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return "<time>" if isinstance(value, str) and TIMESTAMP.search(value) else value


def _stored(store_dir: Path) -> dict[str, Any]:
    with Store.open(store_dir) as store:
        out: dict[str, Any] = {}
        for session in store.sessions():
            state = store.load(f"sessions/{session}")
            # derived from the rest (an output id has a random part, so its estimate varies)
            for owned in (
                "checkpoint_id",
                "parent_checkpoint_id",
                "content_hash",
                "estimated_tokens",
            ):
                state.pop(owned, None)
            out[session] = _timeless(state)
        return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c)[:40])
def test_the_console_script_and_the_typer_command_agree(
    case: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "state.json").write_text(json.dumps(STATE))
    results = []
    for label in ("main", "typer"):
        store_dir = tmp_path / label / ".ckpt"
        Store.init(store_dir).close()
        with Store.open(store_dir) as store:
            store.commit(STATE, session="main")
        args = [a.replace("STATE", str(tmp_path / "state.json")) for a in case]
        args = ["--store", str(store_dir), "commit", *[a.replace("MISSING", "nope") for a in args]]
        stdin = json.dumps({"variables": {"from_stdin": True}})
        if label == "main":
            code, out, err = _via_main(monkeypatch, capsys, args, stdin)
        else:
            code, out, err = _via_typer(args, stdin)
        if code == 0 and out.startswith("{"):
            out = str(sorted(json.loads(out)))  # the keys; ids and times differ
        elif code == 0:
            out = "<checkpoint id>" if out.strip().startswith("ckpt-") else out
        results.append((code, out, err.replace(str(store_dir), "<store>"), _stored(store_dir)))
    assert results[0] == results[1]
    code, _, err, _ = results[0]
    if code != 0:
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: "), err


@pytest.mark.parametrize("args", [["--var", "a", "1"], ["--state", "state.json"]])
def test_a_commit_from_the_console_script_loads_only_what_it_runs(
    tmp_path: Path, args: list[str]
) -> None:
    # Structural, not timed: the modules a commit loads are what its start-up costs.
    # dataclasses (with inspect) cost more than the commit's own work in a fresh process.
    Store.init(tmp_path / ".ckpt").close()
    (tmp_path / "state.json").write_text(json.dumps({"tasks": [{"id": 1, "subject": "x"}]}))
    script = (
        "import sys, ckpt_cli\n"
        "sys.argv = ['ckpt', '--store', sys.argv[1], 'commit', *sys.argv[2:]]\n"
        "ckpt_cli.main()\n"
        "heavy = ['typer', 'click', 'tomllib', 'ckptstore.summary', 'ckptstore.probes',\n"
        "         'ckptstore.history', 'ckptstore.gc', 'ckptstore.fsck', 'ckptstore.stats',\n"
        "         'dataclasses', 'inspect', 'difflib', 'random', 'copy']\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / ".ckpt"), *args],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout.startswith("ckpt-")
    assert done.stderr.strip() == "[]"
