"""The ``ckpt`` command line on every error path: bad input exits 2, anything else exits 1,
always with one ``error:`` line on stderr, never a traceback, and nothing written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ckptstore import Store
from test_cli import assert_error, ckpt, ok, store_counts

# --- init -------------------------------------------------------------------------------


def test_init_twice_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok(ckpt("init"))
    before = (tmp_path / ".ckpt" / "store.db").read_bytes()
    assert_error(ckpt("init"), 1, "already exists", str(tmp_path / ".ckpt"))
    assert_error(ckpt("init", str(tmp_path)), 1, "already exists")
    assert (tmp_path / ".ckpt" / "store.db").read_bytes() == before


def test_init_rejects_an_unknown_durability(tmp_path: Path) -> None:
    result = ckpt("init", str(tmp_path), "--durability", "sometimes")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--durability" in result.stderr
    assert not (tmp_path / ".ckpt").exists()


@pytest.mark.parametrize("how", ["argument", "store"])
def test_init_under_a_regular_file_fails_cleanly(tmp_path: Path, how: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    target = blocker / "sub"
    args = ["init", str(target)] if how == "argument" else ["init", "--store", str(target)]
    assert_error(ckpt(*args), 1, "Not a directory")
    assert blocker.read_text() == "not a directory"


# --- finding the store ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["commit", "--var", "a", "1"], ["load"], ["log"]])
def test_outside_any_store_commands_say_to_run_ckpt_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    if any((d / ".ckpt" / "store.db").is_file() for d in (tmp_path, *tmp_path.parents)):
        pytest.skip(f"a store exists above {tmp_path}, so no directory here is outside one")
    monkeypatch.chdir(tmp_path)
    assert_error(ckpt(*command), 1, "no ckpt store", "ckpt init")
    assert not (tmp_path / ".ckpt").exists()


@pytest.mark.parametrize("via", ["option", "env"])
def test_a_dangling_symlink_as_store_is_a_clear_error(tmp_path: Path, via: str) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    args = ["log", "--store", str(link)] if via == "option" else ["log"]
    env = {"CKPT_STORE": str(link)} if via == "env" else None
    assert_error(ckpt(*args, env=env), 1, "dangling symbolic link", str(link))
    assert not (tmp_path / "gone").exists()


def test_a_store_option_naming_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    assert_error(ckpt("load", "--store", str(tmp_path / "nope")), 1, "does not exist")
    assert not (tmp_path / "nope").exists()


def _random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 16)


def _other_sqlite_app(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes(body) VALUES ('mine, not ckpt''s')")
    conn.close()


@pytest.mark.parametrize("make", [_random_bytes, _other_sqlite_app], ids=["random", "sqlite"])
@pytest.mark.parametrize("command", [["commit", "--var", "a", "1"], ["load"], ["log"]])
@pytest.mark.parametrize("via", ["option", "discovery"])
def test_a_foreign_store_db_is_refused_and_left_unchanged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[Path], None],
    command: list[str],
    via: str,
) -> None:
    directory = tmp_path / ".ckpt"
    directory.mkdir()
    make(directory / "store.db")
    before = (directory / "store.db").read_bytes()
    monkeypatch.chdir(tmp_path)
    args = [*command, "--store", str(directory)] if via == "option" else command
    assert_error(ckpt(*args), 1, "not a ckptstore store")
    assert (directory / "store.db").read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == ["store.db"]


# --- commit: bad input writes nothing -------------------------------------------------

DEEP_100K = '{"variables": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
DEEP_300 = '{"variables": {"deep": ' + "[" * 300 + "]" * 300 + "}}"

BAD_STATES = {
    "invalid-json": (b'{"tasks": [}', "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "json-array": (b"[1, 2]", "JSON object"),
    "tasks-not-a-list": (b'{"tasks": {"id": "1"}}', "$.tasks"),
    "task-not-an-object": (b'{"tasks": [{"id": "1"}, "two"]}', "$.tasks[1]"),
    "task-blocks-not-a-list": (b'{"tasks": [{"id": "1", "blocks": 2}]}', "$.tasks[0].blocks"),
    "phase-number-a-string": (b'{"phase": {"number": "5"}}', "$.phase.number"),
    "agent-tier-a-string": (b'{"agent_tier": "1"}', "$.agent_tier"),
    "agent-tier-true": (b'{"agent_tier": true}', "$.agent_tier"),
    "variables-a-list": (b'{"variables": [1]}', "$.variables"),
    "nan": (b'{"variables": {"x": NaN}}', "NaN"),
    "infinity": (b'{"variables": {"x": -Infinity}}', "Infinity"),
    "int-above-64-bits": (b'{"variables": {"big": 18446744073709551616}}', "$.variables.big"),
    "int-below-64-bits": (b'{"recent_outputs": [-9223372036854775809]}', "$.recent_outputs[0]"),
    "not-utf8": (b'{"agent_id": "\xff\xfe"}', "UTF-8"),
    "duplicate-keys": (b'{"variables": {"a": 1, "a": 2}}', "duplicate key 'a'"),
    "nested-100000-deep": (DEEP_100K.encode(), "nested too deeply"),
    "nested-300-deep": (DEEP_300.encode(), "$.variables.deep"),
}


@pytest.fixture
def seeded(store_dir: Path) -> Path:
    """A store with one checkpoint, so a stray write would show in every count."""
    with Store.open(store_dir) as store:
        store.commit({"variables": {"kept": True}}, notes="before")
    return store_dir


def assert_nothing_written(store_dir: Path, before: tuple[int, int, dict[str, str]]) -> None:
    assert store_counts(store_dir) == before
    with Store.open(store_dir) as store:
        assert store.load()["variables"] == {"kept": True}


@pytest.mark.parametrize("source", ["file", "stdin"])
@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_commit_rejects_a_bad_state_and_writes_nothing(
    seeded: Path, tmp_path: Path, case: str, source: str
) -> None:
    payload, needle = BAD_STATES[case]
    before = store_counts(seeded)
    if source == "file":
        path = tmp_path / f"{case}.json"
        path.write_bytes(payload)
        result = ckpt("commit", "--state", str(path), "--store", str(seeded))
        assert_error(result, 2, needle, path.name)
    else:
        result = ckpt("commit", "--state", "-", "--store", str(seeded), input=payload)
        assert_error(result, 2, needle, "<stdin>")
    assert_nothing_written(seeded, before)


@pytest.mark.parametrize(
    ("value", "needle"),
    [("18446744073709551616", "$.variables.big"), ("-9223372036854775809", "$.variables.big")],
)
def test_commit_rejects_a_var_beyond_64_bits_and_writes_nothing(
    seeded: Path, value: str, needle: str
) -> None:
    before = store_counts(seeded)
    assert_error(ckpt("commit", "--var", "big", value, "--store", str(seeded)), 2, needle)
    assert_nothing_written(seeded, before)


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_commit_rejects_an_unreadable_state_file(seeded: Path, tmp_path: Path, what: str) -> None:
    path = tmp_path / "missing.json" if what == "missing" else tmp_path
    before = store_counts(seeded)
    assert_error(ckpt("commit", "--state", str(path), "--store", str(seeded)), 2, "--state")
    assert_nothing_written(seeded, before)


def test_commit_var_without_a_value_is_a_usage_error(seeded: Path) -> None:
    before = store_counts(seeded)
    result = ckpt("commit", "--store", str(seeded), "--var", "lonely")
    assert_error(result, 2, "--var")
    assert_nothing_written(seeded, before)


BAD_NAMES = ["a..b", "/x", "x/", "has space", "a\x01b", "a" * 201, "HEAD", "x~1", ".hidden"]


@pytest.mark.parametrize("via", ["option", "env"])
@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:20])
def test_commit_rejects_an_invalid_session_name_and_writes_nothing(
    seeded: Path, tmp_path: Path, name: str, via: str
) -> None:
    before = store_counts(seeded)
    args = ["commit", "--store", str(seeded), "--var", "a", "1"]
    if via == "option":
        result = ckpt(*args, "--session", name)
    else:
        result = ckpt(*args, env={"CKPT_SESSION": name})
    assert_error(result, 2, "invalid name", repr(name))
    assert_nothing_written(seeded, before)


# --- load and log -----------------------------------------------------------------------


@pytest.fixture
def two_sessions(store_dir: Path) -> Path:
    with Store.open(store_dir) as store:
        for n in range(2):
            store.commit(variables={"n": n})
        store.commit(session="feature", variables={"f": 1})
    return store_dir


@pytest.mark.parametrize("command", ["load", "log"])
def test_an_unknown_ref_exits_1_listing_known_sessions(two_sessions: Path, command: str) -> None:
    line = assert_error(ckpt(command, "nope", "--store", str(two_sessions)), 1, "'nope'")
    assert "known: " in line
    assert "main" in line.split("known: ")[1]
    assert "feature" in line.split("known: ")[1]


def test_going_back_past_the_first_checkpoint_exits_1(two_sessions: Path) -> None:
    assert_error(ckpt("load", "HEAD~99", "--store", str(two_sessions)), 1, "HEAD~99")
    assert_error(ckpt("load", "feature~1", "--store", str(two_sessions)), 1, "feature~1")


def test_a_checkpoint_id_with_another_timestamp_is_not_found(two_sessions: Path) -> None:
    with Store.open(two_sessions) as store:
        oid = store.log(limit=1)[0].id
    ref = f"ckpt-20000101-000000-{oid[:8]}"
    assert_error(ckpt("load", ref, "--store", str(two_sessions)), 1, ref)


def test_a_short_id_of_a_non_checkpoint_object_is_not_found(two_sessions: Path) -> None:
    with Store.open(two_sessions) as store:
        tree = store.load()["content_hash"]
    assert_error(ckpt("load", tree[:12], "--store", str(two_sessions)), 1, "not a checkpoint")


def test_an_ambiguous_short_id_exits_1_listing_the_candidates(store_dir: Path) -> None:
    # Commit ids are deterministic for fixed timestamps and notes; collect until two
    # commits share a 4-hex prefix (the birthday bound makes this a few hundred commits).
    seen: dict[str, str] = {}
    with Store.open(store_dir, durability="fast") as store:
        for n in range(20_000):
            oid = store.commit(notes=str(n), created_at="2026-01-23T12:00:00.000000+00:00").id
            if oid[:4] in seen:
                break
            seen[oid[:4]] = oid
        else:
            pytest.fail("no two commit ids shared a 4-hex prefix")
    prefix = oid[:4]
    line = assert_error(ckpt("load", prefix, "--store", str(store_dir)), 1, "ambiguous")
    assert seen[prefix] in line
    assert oid in line
    # One more hex digit that tells them apart resolves it.
    cut = next(i for i in range(5, 65) if oid[:i] != seen[prefix][:i])
    assert ok(ckpt("load", "--json", oid[:cut], "--store", str(store_dir))).stdout


@pytest.mark.parametrize("command", [["load"], ["show"], ["log"], ["log", "--json"]])
def test_an_empty_store_says_there_are_no_checkpoints(store_dir: Path, command: list[str]) -> None:
    assert_error(ckpt(*command, "--store", str(store_dir)), 1, "no checkpoints yet")


@pytest.mark.parametrize("ref", ["HEAD~x", "main~-1", "", "~1", " HEAD", "HEAD~1x"])
def test_a_malformed_ref_is_bad_input(two_sessions: Path, ref: str) -> None:
    """A REF that cannot be a name (``~`` is forbidden in names) is a syntax error: exit 2."""
    assert_error(ckpt("load", ref, "--store", str(two_sessions)), 2, "bad reference")


def test_log_of_an_unknown_session_exits_1_naming_sessions_with_checkpoints(
    two_sessions: Path,
) -> None:
    line = assert_error(ckpt("log", "--session", "nope", "--store", str(two_sessions)), 1, "nope")
    assert "main" in line
    assert "feature" in line


def test_log_of_an_invalid_session_name_is_bad_input(two_sessions: Path) -> None:
    assert_error(ckpt("log", "-s", "a..b", "--store", str(two_sessions)), 2, "invalid name")


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_log_rejects_a_limit_below_one(two_sessions: Path, limit: str) -> None:
    result = ckpt("log", "--limit", limit, "--store", str(two_sessions))
    assert_error(result, 2, "--limit", "ckpt log --help")


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["bogus"], "No such command"), (["log", "--bogus"], "--bogus"), (["log", "a", "b"], "")],
)
def test_usage_errors_are_one_line_with_exit_2(args: list[str], needle: str) -> None:
    assert_error(ckpt(*args), 2, needle)


def test_bare_ckpt_prints_the_help() -> None:
    result = ckpt()
    assert result.exit_code == 2
    assert "Usage" in result.output
    assert "commit" in result.output


# --- demo -------------------------------------------------------------------------------


def test_demo_rejects_fewer_than_two_steps(tmp_path: Path) -> None:
    result = ckpt("demo", "--dir", str(tmp_path), "--steps", "1")
    assert_error(result, 2, "--steps")
    assert not (tmp_path / ".ckpt").exists()


def test_demo_refuses_a_directory_that_already_has_a_store(store_dir: Path) -> None:
    before = store_counts(store_dir)
    result = ckpt("demo", "--dir", str(store_dir.parent), "--steps", "2")
    assert_error(result, 1, "already exists")
    assert store_counts(store_dir) == before


# --- read-only stores -------------------------------------------------------------------

# Runs one ckpt command as an unprivileged user. When started as root it drops to
# uid/gid 65534 itself, after importing: the interpreter may live where that user cannot
# read (a pyenv under root's home, mode 0700), so a preexec_fn drop would stop python from
# starting. A warm-up run of the same command on a writable scratch store first loads
# every module the command imports lazily. Exit 77: the target stayed writable; 78: the
# privileges could not be dropped.
DROP_PRIVILEGES = """
if os.geteuid() == 0:
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as err:
        print(err, file=sys.stderr)
        sys.exit(78)
"""
"""Child-script lines: become uid/gid 65534 when running as root (exit 78 if that fails)."""

CHILD = (
    r"""
import os, sys
from typer.testing import CliRunner
from ckpt_cli import app
target, scratch, *args = sys.argv[1:]
CliRunner().invoke(app, [arg.replace(target, scratch) for arg in args])
"""
    + DROP_PRIVILEGES
    + r"""
if os.access(target, os.W_OK):
    sys.exit(77)
app(args, prog_name="ckpt")
"""
)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="ckpt-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in (path, *path.rglob("*")):
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o755)
        shutil.rmtree(path)


def run_unprivileged(target: Path, scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ckpt ARGS`` in a child process that cannot write ``target``."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), str(scratch), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("CKPT_STORE", "CKPT_SESSION")},
    )
    if done.returncode == 77:
        who = "uid 65534" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        pytest.skip(f"{target} is still writable for {who} after chmod, so it cannot be read-only")
    if done.returncode == 78:
        pytest.skip(f"running as root but cannot drop to uid 65534: {done.stderr.strip()}")
    return done


def _assert_one_line_failure(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture
def read_only_store(world_readable_dir: Path) -> Path:
    directory = world_readable_dir / ".ckpt"
    with Store.init(directory) as store:
        store.commit(variables={"a": 1})
    (directory / "store.db").chmod(0o444)
    directory.chmod(0o555)
    return directory


def _scratch_store(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    with Store.init(scratch) as store:
        store.commit(variables={"a": 1})
    return scratch


def test_commit_to_a_read_only_store_fails_cleanly_and_changes_nothing(
    read_only_store: Path, tmp_path: Path
) -> None:
    before = (read_only_store / "store.db").read_bytes()
    args = ("commit", "--var", "a", "2", "--store", str(read_only_store))
    done = run_unprivileged(read_only_store, _scratch_store(tmp_path), *args)
    _assert_one_line_failure(done, str(read_only_store))
    assert (read_only_store / "store.db").read_bytes() == before
    assert sorted(p.name for p in read_only_store.iterdir()) == ["store.db"]


def test_load_from_a_read_only_store_reads_it(read_only_store: Path, tmp_path: Path) -> None:
    """Reading needs no write access: ``ckpt load`` works on an archived or shared store."""
    args = ("load", "--json", "--store", str(read_only_store))
    done = run_unprivileged(read_only_store, _scratch_store(tmp_path), *args)
    assert done.returncode == 0, done.stderr
    assert '"a": 1' in done.stdout


def test_init_in_a_read_only_directory_fails_cleanly(
    world_readable_dir: Path, tmp_path: Path
) -> None:
    target = world_readable_dir / "locked"
    target.mkdir()
    target.chmod(0o555)
    done = run_unprivileged(target, tmp_path / "scratch", "init", str(target))
    _assert_one_line_failure(done, str(target))
    assert list(target.iterdir()) == []
