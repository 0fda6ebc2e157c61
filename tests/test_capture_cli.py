"""The capture commands: ``ckpt commit``'s flags, ``ckpt deps``, ``ckpt import``, ``ckpt export``.

In-process through CliRunner (with real listeners and real files); one round trip runs
the installed ``ckpt`` entry point in real processes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ckpt_cli import app
from ckptstore import Store

RUNNER = CliRunner()
CLEAN_ENV = {"CKPT_AGENT_ID": None, "CKPT_AGENT_TIER": None, "CKPT_SESSION_ID": None}


def ckpt(*args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    return RUNNER.invoke(app, list(args), input=input, env={**CLEAN_ENV, **(env or {})})


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(result: Result, code: int, *needles: str) -> str:
    """A clean failure: exit ``code``, one ``error:`` line on stderr holding ``needles``."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def commit(store_dir: Path, *args: str, **kw: Any) -> dict[str, Any]:
    out = ok(ckpt("commit", "--json", "--store", str(store_dir), *args, **kw)).stdout
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def load(store_dir: Path, ref: str = "HEAD") -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(
        ok(ckpt("load", "--json", "--reveal", "--store", str(store_dir), ref)).stdout
    )
    return parsed


def count_commits(store_dir: Path) -> int:
    with Store.open(store_dir) as store:
        return len(store.log(all_sessions=True, limit=None)) if store.sessions() else 0


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# --- commit flags -----------------------------------------------------------------------------


def test_commit_flags_build_the_checkpoint(store_dir: Path) -> None:
    commit(store_dir, "--phase", "Phase 1: build", "--phase-number", "1", "--task-add", "write",
           "--task-add", "test", "-m", "start")  # fmt: skip
    info = commit(store_dir, "--task", "1=completed", "--active-task", "2",
                  "--output", "evidence:terraform apply:ok", "--var", "step", "2")  # fmt: skip
    assert info["dependencies"] == []
    assert info["collector_errors"] == []
    loaded = load(store_dir)
    assert loaded["phase"]["name"] == "Phase 1: build"
    assert loaded["phase"]["number"] == 1
    assert [(t["id"], t["status"]) for t in loaded["tasks"]] == [
        ("1", "completed"),
        ("2", "pending"),
    ]
    assert loaded["active_task_id"] == "2"
    assert loaded["recent_outputs"][0]["action"] == "terraform apply"
    assert loaded["recent_outputs"][0]["success"] is True
    assert loaded["variables"] == {"step": 2}
    ok(ckpt("now", "--store", str(store_dir), "--phase-status", "completed", "--unset-var", "step"))
    loaded = load(store_dir)
    assert loaded["phases_completed"] == [1]
    assert loaded["variables"] == {}


def test_merge_takes_a_partial_state_from_stdin(store_dir: Path) -> None:
    commit(store_dir, "--task-add", "a", "--task-add", "b")
    partial = {"tasks": [{"id": "2", "status": "in_progress", "owner": "me"}]}
    commit(store_dir, "--state", "-", "--merge", input=json.dumps(partial))
    tasks = load(store_dir)["tasks"]
    assert tasks[0]["status"] == "pending"
    assert (tasks[1]["status"], tasks[1]["owner"]) == ("in_progress", "me")


def test_the_environment_names_the_agent_and_the_session(store_dir: Path) -> None:
    env = {"CKPT_AGENT_ID": "agent-7", "CKPT_AGENT_TIER": "2", "CKPT_SESSION_ID": "run-1"}
    info = commit(store_dir, "--var", "a", "1", env=env)
    assert (info["session"], info["agent_id"], info["agent_tier"]) == ("run-1", "agent-7", 2)
    assert commit(store_dir, "--session", "other", env=env)["session"] == "other"


@pytest.mark.parametrize(
    ("args", "stdin", "needles"),
    [
        (["--task", "9=completed"], None, ["--task: no task has id '9'", "known: 1"]),
        (["--task", "completed"], None, ["--task 'completed'", "ID=STATUS"]),
        (["--active-task", "5"], None, ["--active-task: no task has id '5'"]),
        (["--output", "evidence:ok"], None, ["--output 'evidence:ok'", "TYPE:ACTION:ok|fail"]),
        (["--output", "e:a:perhaps"], None, ["ok or fail"]),
        (["--unset-var", "nope"], None, ["$.variables.nope", "not set"]),
        (["--merge"], None, ["--merge", "needs a partial state"]),
        (["--state", "-", "--merge"], '{"tasks": [{"status": "x"}]}', ["<stdin>: $.tasks[0].id"]),
        (["--state", "-", "--merge"], '{"tasks": 5}', ["$.tasks: must be a list"]),
        (["--phase-number", "five"], None, ["--phase-number"]),
    ],
)
def test_bad_capture_input_exits_2_and_writes_nothing(
    store_dir: Path, args: list[str], stdin: str | None, needles: list[str]
) -> None:
    commit(store_dir, "--task-add", "one")
    with Store.open(store_dir) as store:
        objects = set(store.backend.iter_ids())
    fails(ckpt("commit", "--store", str(store_dir), "--var", "x", "1", *args, input=stdin), 2,
          *needles)  # fmt: skip
    with Store.open(store_dir) as store:
        assert set(store.backend.iter_ids()) == objects
    assert count_commits(store_dir) == 1


def test_a_bad_agent_tier_in_the_environment_exits_2(store_dir: Path) -> None:
    fails(
        ckpt("commit", "--store", str(store_dir), env={"CKPT_AGENT_TIER": "top"}), 2,
        "CKPT_AGENT_TIER='top'", "must be an integer",
    )  # fmt: skip
    assert count_commits(store_dir) == 0


# --- probes in commit, and ckpt deps ----------------------------------------------------------


def test_commit_probes_the_configured_dependencies_unless_told_not_to(
    store_dir: Path, closed_port: int, listener: int
) -> None:
    (store_dir / "config.toml").write_text(
        f'[[dependencies]]\nname = "cache"\ncheck = "tcp"\nendpoint = "127.0.0.1:{listener}"\n\n'
        f'[[dependencies]]\nname = "db"\ntype = "database"\ncheck = "tcp"\n'
        f'endpoint = "127.0.0.1:{closed_port}"\n'
    )
    info = commit(store_dir, "--var", "a", "1")
    assert [(d["name"], d["status"], d["reason"]) for d in info["dependencies"]] == [
        ("cache", "available", None),
        ("db", "unavailable", "connection refused"),
    ]
    deps = load(store_dir)["dependencies"]
    assert [d["status"] for d in deps] == ["available", "unavailable"]
    assert deps[1]["type"] == "database"
    info = commit(store_dir, "--no-probe", "--var", "a", "2")
    assert info["dependencies"] == []
    assert load(store_dir)["dependencies"] == deps


def test_deps_shows_the_dependencies_without_committing(
    store_dir: Path, closed_port: int, listener: int
) -> None:
    out = ok(ckpt("deps", "--store", str(store_dir))).stdout
    assert out.startswith("no dependencies are declared; add [[dependencies]] tables to ")
    (store_dir / "config.toml").write_text(
        f'[[dependencies]]\nname = "cache"\ncheck = "tcp"\nendpoint = "127.0.0.1:{listener}"\n\n'
        f'[[dependencies]]\nname = "db"\ncheck = "tcp"\nendpoint = "127.0.0.1:{closed_port}"\n'
    )
    lines = ok(ckpt("deps", "--store", str(store_dir))).stdout.splitlines()
    assert lines[0].split()[:3] == ["cache", "tcp", "available"]
    assert lines[1].split()[:3] == ["db", "tcp", "unavailable"]
    assert lines[1].endswith("(connection refused)")
    parsed = json.loads(ok(ckpt("deps", "--json", "--store", str(store_dir))).stdout)
    assert [(d["name"], d["check"], d["status"]) for d in parsed] == [
        ("cache", "tcp", "available"), ("db", "tcp", "unavailable"),
    ]  # fmt: skip
    assert ckpt("deps", "--exit-code", "--store", str(store_dir)).exit_code == 1
    assert count_commits(store_dir) == 0


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        ('[[dependencies]]\nname = "x"\ncheck = "ping"\nendpoint = "h:1"\n',
         ["config.toml:3:", "dependencies[0].check", "'ping' is not a known check"]),
        ('[[dependencies]]\nname = "x"\ncheck = "tcp"\n',
         ["config.toml:1:", "dependencies[0].endpoint is missing"]),
        ("[[dependencies]\n", ["config.toml:1:", "not valid TOML"]),
    ],
)  # fmt: skip
def test_a_malformed_config_exits_2_naming_the_line_and_writes_nothing(
    store_dir: Path, config: str, needles: list[str]
) -> None:
    (store_dir / "config.toml").write_text(config)
    fails(ckpt("commit", "--store", str(store_dir), "--var", "a", "1"), 2, *needles)
    fails(ckpt("deps", "--store", str(store_dir)), 2, *needles)
    assert count_commits(store_dir) == 0


def test_a_failing_plugin_is_a_warning_and_the_checkpoint_is_written(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    dist = site / "ckpt_cli_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "ckpt_cli_plugin.py").write_text(
        "class Broken:\n    name = 'broken'\n"
        "    def collect(self, context):\n        raise OSError('disk gone')\n"
    )
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ckpt-cli-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ckptstore.collectors]\nbroken = ckpt_cli_plugin:Broken\n"
    )
    monkeypatch.syspath_prepend(str(site))
    result = ok(ckpt("commit", "--store", str(store_dir), "--var", "a", "1"))
    assert result.stderr.strip() == (
        "warning: collector 'broken' failed (OSError: disk gone); recorded in the checkpoint's"
        " collector_errors"
    )
    assert load(store_dir)["collector_errors"] == [
        {"collector": "broken", "error": "OSError: disk gone"}
    ]


# --- import and export ------------------------------------------------------------------------


def original(n: int, parent: str | None, session: str | None = "agent-1") -> dict[str, Any]:
    return {
        "checkpoint_id": f"ckpt-20260123-12000{n}-abcdef0{n}",
        "created_at": f"2026-01-23T12:00:0{n}.000000+00:00",
        "session_id": session,
        "phase": {"name": "Phase 5", "number": 5, "status": "in_progress"},
        "phases_completed": [1, 2, 3, 4],
        "tasks": [{"id": "1", "subject": "s", "status": "pending", "owner": None,
                   "blocks": [], "blocked_by": []}],
        "active_task_id": "1",
        "dependencies": [],
        "variables": {"n": n},
        "recent_outputs": [],
        "agent_id": "my-agent",
        "agent_tier": 1,
        "content_hash": "abc123",
        "parent_checkpoint_id": parent,
        "estimated_tokens": 450,
    }  # fmt: skip


def write_dir(directory: Path) -> list[dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)
    one = original(1, None)
    two = original(2, one["checkpoint_id"])
    fork = original(3, one["checkpoint_id"])  # a second child of one: a fork
    for data in (one, two, fork):
        (directory / f"{data['checkpoint_id']}.json").write_text(json.dumps(data, indent=2))
    return [one, two, fork]


def test_import_reports_and_export_writes_the_files_back(store_dir: Path, tmp_path: Path) -> None:
    files = write_dir(tmp_path / "in")
    (tmp_path / "in" / "ckpt-broken.json").write_text('{"checkpoint_id": "ckpt-')
    result = ckpt("import", "--store", str(store_dir), str(tmp_path / "in"))
    assert result.exit_code == 1  # one file was rejected; the rest are in
    assert result.stdout.splitlines() == [
        "imported 3, skipped 0 (already present), rejected 1",
        f"fork: a branch of the parent chain became session agent-1/{files[1]['checkpoint_id']}",
    ]
    assert result.stderr.startswith(f"rejected: {tmp_path / 'in' / 'ckpt-broken.json'}: the file")
    assert load(store_dir, files[2]["checkpoint_id"])["variables"] == {"n": 3}

    report = json.loads(
        ckpt("import", "--json", "--store", str(store_dir), str(tmp_path / "in")).stdout
    )
    assert [e["status"] for e in report["skipped"]] == ["skipped"] * 3
    assert report["imported"] == []
    assert [Path(e["path"]).name for e in report["rejected"]] == ["ckpt-broken.json"]
    assert report["forks"] == []
    assert report["cycles"] == []

    out = tmp_path / "out"
    written = json.loads(
        ok(ckpt("export", "--json", "--all", "--dir", str(out), "--store", str(store_dir))).stdout
    )
    assert len(written["written"]) == 3
    assert {p.name: json.loads(p.read_text()) for p in out.iterdir()} == {
        f"{f['checkpoint_id']}.json": f for f in files
    }
    single = tmp_path / "single"
    ok(ckpt("export", files[0]["checkpoint_id"], "--dir", str(single), "--store", str(store_dir)))
    assert [p.name for p in single.iterdir()] == [f"{files[0]['checkpoint_id']}.json"]
    session = tmp_path / "session"
    text = ok(ckpt("export", "-s", "agent-1", "--dir", str(session), "--store", str(store_dir)))
    assert text.stdout.strip() == f"wrote 2 checkpoint file(s) to {session}"


def test_import_and_export_errors(store_dir: Path, tmp_path: Path) -> None:
    fails(ckpt("import", "--store", str(store_dir), str(tmp_path / "missing")), 2,
          "neither a file nor a directory")  # fmt: skip
    fails(ckpt("export", "--dir", str(tmp_path), "--store", str(store_dir)), 2, "--session NAME")
    fails(ckpt("import", "--session", "a b", str(tmp_path), "--store", str(store_dir)), 2,
          "invalid name 'a b'")  # fmt: skip


def test_import_and_export_through_the_installed_command(store_dir: Path, tmp_path: Path) -> None:
    exe = shutil.which("ckpt", path=str(Path(sys.executable).parent))
    assert exe is not None
    files = write_dir(tmp_path / "in")
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    done = subprocess.run(
        [exe, "--store", str(store_dir), "import", "--json", str(tmp_path / "in")],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    assert len(json.loads(done.stdout)["imported"]) == 3
    subprocess.run(
        [exe, "--store", str(store_dir), "export", "--all", "--dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    exported = {p.name: json.loads(p.read_text()) for p in (tmp_path / "out").iterdir()}
    assert exported == {f"{f['checkpoint_id']}.json": f for f in files}


@pytest.mark.parametrize("name", ["deps", "import", "export"])
def test_the_capture_commands_have_help_and_are_listed(name: str) -> None:
    assert ok(ckpt(name, "--help")).stdout.startswith("Usage: ")
    assert f"  {name} " in ok(ckpt("--help")).stdout
