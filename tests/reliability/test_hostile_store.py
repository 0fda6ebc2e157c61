"""Hostile names and store directories: refused with one clear line, and nothing written.

Session and tag names follow git's ref-name rules (checked against ``git
check-ref-format`` itself) and refuse the Unicode spaces, control and format
characters git lets through. A store directory that is a dangling symbolic link, is
read-only, or was written by a newer ckptstore is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptstore import (
    InvalidRefName,
    RetentionPolicy,
    Store,
    StoreNotFound,
    StoreNotWritable,
    UnsupportedFormat,
)
from ckptstore.backends.sqlite import FORMAT_VERSION
from ckptstore.location import STORE_FILE
from ckptstore.refs import check_name
from reliability.harness import scaled
from reliability.test_crash import ckpt_command
from test_cli import assert_error, ckpt
from test_cli_errors import DROP_PRIVILEGES

BAD_NAMES = [
    "a..b", "..", "/lead", "trail/", "a//b", ".hidden", "a/.b", "end.", "x.lock", "-dash",
    "HEAD", "@", "a@{1}", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
    "space name", " lead", "trail ", "tab\tname", "new\nline", "bell\x07", "del\x7f",
    "nel\x85", "nbsp\u00a0x", "line\u2028sep", "zero\u200bwidth", "bidi\u202eexe", "bad\udcff",
    "x" * 201,
]  # fmt: skip
GOOD_NAMES = ["agent-1", "a.b/c_d", "café", "日本/チーム", "x" * 200, "v1.2", "a@b"]


def db_state(directory: Path) -> tuple[Any, ...]:
    """Everything a command could write: objects, refs, reflog, settings, prune marks."""
    with closing(sqlite3.connect(directory / STORE_FILE)) as db:
        return tuple(
            db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("objects", "refs", "reflog", "settings", "pruned")
        )


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def seeded(store_dir: Path) -> Path:
    with Store.open(store_dir) as store:
        store.commit({"variables": {"a": 1}}, session="main")
        store.commit({"variables": {"a": 2}}, session="main")
    return store_dir


# --- names ---------------------------------------------------------------------------------

NAME_PARTS = st.sampled_from(
    ["a", "b", "/", ".", "..", "-", "_", "@", "{", "}", "~", "^", ":", "?", "*", "[", "\\",
     " ", "\t", "\x01", "\x7f", "\x85", "\u00a0", "\u2028", "\u200b", "é", "日", ".lock",
     "HEAD", "\udcff"]
)  # fmt: skip
NAMES = st.lists(NAME_PARTS, max_size=8).map("".join) | st.text(max_size=12)


def git_accepts(name: str) -> bool:
    done = subprocess.run(
        ["git", "check-ref-format", f"sessions/{name}"], capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_name_the_store_accepts_is_one_git_accepts(figure: Callable[[str], None]) -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=scaled(300, 5000))
    @given(NAMES)
    def compare(name: str) -> None:
        refused: InvalidRefName | None = None
        try:
            check_name(name)
        except InvalidRefName as err:
            refused = err
        accepted = refused is None
        assert "\n" not in str(refused or "")
        if "\x00" in name or any("\ud800" <= ch <= "\udfff" for ch in name):
            assert not accepted  # not even expressible as a git argument
            seen["refused, not even a git argument"] += 1
            return
        git = git_accepts(name)
        if accepted:
            assert git, f"git refuses {name!r}"
            seen["accepted by both"] += 1
        elif git:  # then one of the store's own, stricter rules applies
            assert (
                name in ("HEAD", "@") or name.startswith("-") or len(name) > 200
                or not name.isascii()
            ), f"refused {name!r}, which git accepts"  # fmt: skip
            seen["refused by the stricter rules only"] += 1
        else:
            seen["refused by both"] += 1

    compare()
    figure(
        f"{sum(seen.values())} generated names against `git check-ref-format`: "
        + ", ".join(f"{n} {what}" for what, n in sorted(seen.items()))
    )


NAME_CALLS: dict[str, Callable[[Store, str], object]] = {
    "commit": lambda s, n: s.commit(variables={"b": 1}, session=n),
    "capture": lambda s, n: s.capture(variables={"b": 1}, session=n, probe=False),
    "fork": lambda s, n: s.fork(n, "main"),
    "tag": lambda s, n: s.tag(n, "main"),
    "switch": lambda s, n: s.switch(n),
    "log": lambda s, n: s.log(session=n),
    "history": lambda s, n: s.history("variables.a", session=n),
    "prune": lambda s, n: s.prune(RetentionPolicy(last=1), sessions=[n]),
    "delete_tag": lambda s, n: s.delete_tag(n),
    "session": lambda s, n: s.session(n),
    "publish": lambda s, n: s.publish(n, None, b"\x01" * 32, {}, "x"),
}


def test_bad_names_are_refused_by_every_api_call_and_nothing_is_written(
    seeded: Path, figure: Callable[[str], None]
) -> None:
    before = db_state(seeded)
    with Store.open(seeded) as store:
        for name in BAD_NAMES:
            for call, run in NAME_CALLS.items():
                with pytest.raises(InvalidRefName) as caught:
                    run(store, name)
                message = str(caught.value)
                assert caught.value.name == name, call
                assert not any(ch in message for ch in "\n\u2028\x85"), message
    assert db_state(seeded) == before
    with Store.open(seeded) as store:
        for name in GOOD_NAMES:
            store.commit(variables={"n": name}, session=name)
            store.tag(name, name)
            assert store.load(f"tags/{name}")["variables"] == {"n": name}
            assert [c.session for c in store.log(session=name)] == [name]
    figure(
        f"{len(BAD_NAMES)} bad names x {len(NAME_CALLS)} API calls refused, nothing written;"
        f" {len(GOOD_NAMES)} good ones (Unicode, 200 characters) work"
    )


@pytest.mark.parametrize(
    "command",
    [["commit", "--var", "b", "1", "--no-probe", "--session"], ["tag", "--"],
     ["session", "new", "--"], ["session", "switch", "--"], ["log", "--session"],
     ["prune", "--keep", "1", "--session"]],
    ids=lambda c: "-".join(c[:2]),
)  # fmt: skip
def test_bad_names_are_one_line_errors_at_the_cli(seeded: Path, command: list[str]) -> None:
    before = db_state(seeded)
    for name in BAD_NAMES:
        line = assert_error(ckpt("--store", str(seeded), *command, name), 2, "invalid name")
        assert len(line) < 600
    assert db_state(seeded) == before


def test_a_name_that_is_not_utf8_on_the_command_line_is_a_clean_error(seeded: Path) -> None:
    """Undecodable argv bytes arrive as lone surrogates: refused, never a traceback."""
    before = db_state(seeded)
    for args in (
        [b"commit", b"--no-probe", b"--var", b"a", b"1", b"--session", b"agent\xff"],
        [b"tag", b"t\xfe\xff"],
        [b"session", b"new", b"s\xc3"],
    ):
        done = subprocess.run(
            [*(os.fsencode(a) for a in ckpt_command()), b"--store", os.fsencode(seeded), *args],
            capture_output=True,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.decode(errors="replace").splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: invalid name"), lines
    assert db_state(seeded) == before


# --- store directories ---------------------------------------------------------------------


def test_a_dangling_symlink_store_is_refused_by_the_api_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(StoreNotFound, match="dangling symbolic link"):
        Store.open(link)
    for target in (link, link / "sub", link / ".ckpt"):
        with pytest.raises(StoreNotWritable, match="dangling symbolic link"):
            Store.init(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_a_dangling_ckpt_link_stops_the_search_instead_of_using_a_store_further_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands in a project whose .ckpt points nowhere must not write to a parent's store."""
    Store.init(tmp_path / ".ckpt").close()
    project = tmp_path / "project"
    project.mkdir()
    (project / ".ckpt").symlink_to(tmp_path / "unmounted")
    before = db_state(tmp_path / ".ckpt")
    monkeypatch.chdir(project)
    with pytest.raises(StoreNotFound, match="dangling symbolic link"):
        Store.open()
    link = str(project / ".ckpt")
    assert_error(ckpt("commit", "--var", "a", "1", "--no-probe"), 1, "dangling", link)
    assert_error(ckpt("log"), 1, "dangling", link)
    assert_error(ckpt("init"), 1, "dangling", link)
    assert db_state(tmp_path / ".ckpt") == before
    assert not (tmp_path / "unmounted").exists()


WRITES = [
    ["commit", "--no-probe", "--var", "a", "3"],
    ["commit", "--no-probe", "--state", "-"],
    ["tag", "t1"],
    ["session", "new", "s2"],
    ["session", "switch", "main"],
    ["gc"],
    ["prune", "--keep", "1"],
    ["import", "imports"],
]
READS = [["load"], ["log"], ["diff"], ["fsck"], ["stats"], ["summary"], ["session", "list"]]


@pytest.mark.parametrize("version", [str(FORMAT_VERSION + 1), "999"])
def test_a_store_of_a_newer_format_is_refused_by_every_command_untouched(
    seeded: Path, version: str, figure: Callable[[str], None]
) -> None:
    with closing(sqlite3.connect(seeded / STORE_FILE)) as db, db:
        db.execute("UPDATE settings SET value=? WHERE key='format_version'", (version,))
    before = files(seeded)
    assert list(before) == [STORE_FILE]
    with pytest.raises(UnsupportedFormat):
        Store.open(seeded)
    for command in WRITES + READS:
        result = ckpt("--store", str(seeded), *command, input="{}")
        assert_error(result, 1, f"format {version}", "nothing was written")
        assert files(seeded) == before, command  # same bytes, no -wal or -shm either
    figure(f"format {version}: {len(WRITES + READS)} commands refused, the store untouched")


# Runs commands as an unprivileged user (root drops to uid 65534 after importing, since
# the interpreter may live where that user cannot read; see tests/test_cli_errors.py).
# A warm-up pass on a writable scratch store loads what commands import lazily.
CHILD = (
    r"""
import json, os, sys
from typer.testing import CliRunner
from ckpt_cli import app
from ckptstore import CkptError, RetentionPolicy, Store
target, scratch, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
runner = CliRunner()
for command in commands:
    runner.invoke(app, ["--store", scratch, *command], input="{}")
"""
    + DROP_PRIVILEGES
    + r"""
if os.access(target, os.W_OK) or os.access(os.path.join(target, "store.db"), os.W_OK):
    sys.exit(77)
results = []
for command in commands:
    done = runner.invoke(app, ["--store", target, *command], input="{}")
    results.append([command, done.exit_code, done.stderr, repr(done.exception)])
calls = {
    "commit": lambda s: s.commit(variables={"a": 9}),
    "tag": lambda s: s.tag("t2"),
    "fork": lambda s: s.fork("s3"),
    "gc": lambda s: s.gc(),
    "prune": lambda s: s.prune(RetentionPolicy(last=1)),
    "mark_secret": lambda s: s.mark_secret(["API_TOKEN"]),
}
api = {}
for name, call in calls.items():
    try:
        with Store.open(target) as store:
            call(store)
        api[name] = "no error"
    except CkptError as err:
        api[name] = [type(err).__name__, str(err)]
    except BaseException as err:
        api[name] = ["crash", repr(err)]
print(json.dumps({"cli": results, "api": api}))
"""
)


@pytest.fixture
def read_only_store() -> Iterator[Path]:
    """A store an unprivileged user can read but not write, and a checkpoint file beside it."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="ckpt-ro-"))
    base.chmod(0o755)
    directory = base / ".ckpt"
    with Store.init(directory) as store:
        store.commit({"variables": {"a": 1}})
        store.commit({"variables": {"a": 2}})
    (base / "imports").mkdir()
    (base / "imports" / "ckpt-20260101-000000-abcdef12.json").write_text(
        json.dumps({"checkpoint_id": "ckpt-20260101-000000-abcdef12", "session_id": "imp",
                    "created_at": "2026-01-01T00:00:00+00:00", "variables": {"a": 1}})
    )  # fmt: skip
    (directory / STORE_FILE).chmod(0o444)
    directory.chmod(0o555)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(base)


def test_a_read_only_store_refuses_every_write_cleanly_and_still_reads(
    read_only_store: Path, tmp_path: Path, figure: Callable[[str], None]
) -> None:
    scratch = tmp_path / "scratch"
    with Store.init(scratch) as store:
        store.commit({"variables": {"a": 1}})
        store.commit({"variables": {"a": 2}})
    before = files(read_only_store)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(read_only_store), str(scratch),
         json.dumps(WRITES + READS)],
        capture_output=True, text=True, timeout=300, cwd=read_only_store.parent,
        env={k: v for k, v in os.environ.items() if k not in ("CKPT_STORE", "CKPT_SESSION")},
    )  # fmt: skip
    if done.returncode == 77:
        pytest.skip("the store stays writable for this user after chmod (not root, no uid drop)")
    if done.returncode == 78:
        pytest.skip(f"running as root but cannot drop to uid 65534: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for command, code, stderr, exception in report["cli"]:
        if command in READS:
            assert code == 0, (command, stderr, exception)
            continue
        assert code == 1, (command, stderr, exception)
        lines = stderr.splitlines()
        # import reports each file it could not import ("rejected: FILE: why").
        assert len(lines) == 1, (command, stderr, exception)
        assert lines[0].startswith(("error: ", "rejected: ")), (command, lines[0])
        assert str(read_only_store) in lines[0], (command, lines[0])
    for call, outcome in report["api"].items():
        assert outcome[0] == "StoreNotWritable", (call, outcome)
    assert files(read_only_store) == before
    figure(
        f"read-only store: {len(WRITES)} writing commands and {len(report['api'])} API calls"
        f" refused with one line each, {len(READS)} reading commands worked, nothing written"
    )
