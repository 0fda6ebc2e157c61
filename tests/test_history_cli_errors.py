"""The history commands on every error path: bad input exits 2, anything else exits 1,
always one ``error:`` line on stderr naming the culprit (and what exists), and nothing
written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import Result

from ckptstore import Store
from test_cli import assert_error, ckpt, ok, store_counts
from test_history_cli import build_history


@pytest.fixture
def hist(store_dir: Path) -> list[str]:
    return build_history(store_dir)


def run_in(store_dir: Path, *args: str) -> Result:
    return ckpt("--store", str(store_dir), *args)


def fails(store_dir: Path, code: int, args: tuple[str, ...], *needles: str) -> str:
    """Run a failing command; assert a clean one-line error and that nothing was written."""
    before = store_counts(store_dir)
    line = assert_error(run_in(store_dir, *args), code, *needles)
    assert store_counts(store_dir) == before
    return line


# --- diff --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("HEAD~1", "--from", "HEAD~2"),
        ("HEAD~1", "--to", "HEAD"),
        ("HEAD~2", "HEAD", "--from", "HEAD~3"),
        ("--to", "HEAD", "HEAD~1"),
        ("HEAD~1", "--from", "HEAD~2", "--to", "HEAD"),
    ],
)
def test_diff_rejects_positional_refs_mixed_with_from_to(
    store_dir: Path, hist: list[str], args: tuple[str, ...]
) -> None:
    fails(store_dir, 2, ("diff", *args), "--from/--to", "not both")


@pytest.mark.parametrize(
    ("given", "named"),
    [("bogus", "'bogus'"), ("tasks,bogus", "'bogus'"), ("output", "'output'"), ("var", "'var'")],
)
def test_diff_unknown_section_exits_2_naming_it(
    store_dir: Path, hist: list[str], given: str, named: str
) -> None:
    line = fails(store_dir, 2, ("diff", "--section", given), "--section", named)
    assert "tasks" in line  # the choices are listed
    assert "recent_outputs" in line


def test_diff_unknown_and_malformed_refs(store_dir: Path, hist: list[str]) -> None:
    fails(store_dir, 1, ("diff", "nosuch"), "'nosuch'", "main")
    fails(store_dir, 1, ("diff", "HEAD", "nosuch"), "'nosuch'")
    fails(store_dir, 1, ("diff", "--from", "nosuch", "--to", "HEAD"), "'nosuch'")
    fails(store_dir, 1, ("diff", "HEAD~9"), "'HEAD~9'")
    fails(store_dir, 2, ("diff", "HEAD~x"), "'HEAD~x'")
    fails(store_dir, 1, ("diff", "--session", "nosuch"), "nosuch")
    # With --exit-code, 1 means "there were differences", so errors exit 2 (git uses 128).
    fails(store_dir, 2, ("diff", "nosuch", "--exit-code"), "'nosuch'")


def test_diff_of_a_session_with_one_checkpoint_says_so(store_dir: Path, hist: list[str]) -> None:
    with Store.open(store_dir) as store:
        store.fork("solo", hist[0])
    fails(
        store_dir, 1, ("diff", "--session", "solo"), "'solo'", "single checkpoint", "ckpt diff A B"
    )
    fails(store_dir, 1, ("diff", "solo~1", "solo"), "solo~1")


def test_diff_in_a_store_with_one_or_no_checkpoint(store_dir: Path) -> None:
    fails(store_dir, 1, ("diff",), "no checkpoints yet")
    with Store.open(store_dir) as store:
        store.commit(variables={"a": 1})
    fails(store_dir, 1, ("diff",), "'main'", "single checkpoint")
    fails(store_dir, 1, ("diff", "--stat"), "single checkpoint")
    fails(store_dir, 1, ("diff", "--json"), "single checkpoint")


# --- log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["yesterday", "5x", "2", "h2", "-2h", "2026-13-01", "1.5h"])
def test_log_bad_time_exits_2_naming_it(
    store_dir: Path, hist: list[str], option: str, value: str
) -> None:
    fails(store_dir, 2, ("log", f"{option}={value}"), f"'{value}'", "2h")


@pytest.mark.parametrize(
    "key", ["variables.", "tasks..x", '"unclosed', "", ".plan", 'variables."a"b', "tasks.42."]
)
def test_log_key_malformed_path_exits_2(store_dir: Path, hist: list[str], key: str) -> None:
    fails(store_dir, 2, ("log", "--key", key), "bad path", repr(key))


def test_log_errors_on_refs_and_sessions(store_dir: Path, hist: list[str]) -> None:
    fails(store_dir, 1, ("log", "--key", "variables.plan", "nosuch"), "'nosuch'")
    fails(store_dir, 1, ("log", "nosuch"), "'nosuch'")
    fails(store_dir, 1, ("log", "--session", "nosuch"), "'nosuch'", "main")
    fails(store_dir, 2, ("log", "--session", "bad name"), "'bad name'")
    fails(store_dir, 2, ("log", "--key", "variables.plan", "HEAD~x"), "'HEAD~x'")


# --- show / load REF:PATH --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "load"])
@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("HEAD:variables.nope", ("no variable 'nope'", "known: a.b, plan")),
        ("HEAD~3:variables.nope", ("custom_key, plan",)),
        ("HEAD:tasks.99", ("no task with id '99'", "known: 1, 2, 42")),
        ("HEAD:tasks.42.nope", ("'nope'", "blocked_by", "owner", "status", "subject")),
        ("HEAD:dependencies.nope", ("no dependency with name 'nope'", "known: vault")),
        ("HEAD:dependencies.vault.nope", ("'nope'", "endpoint", "last_checked")),
        ("HEAD:recent_outputs.5", ("'5'", "0..1")),
        ("HEAD:phase.nope", ("'nope'", "name", "number", "status")),
        ("HEAD:agent_tier.x", ("'x'",)),
        ("HEAD:meta.nope", ("'nope'",)),
    ],
)
def test_show_unknown_entry_exits_1_listing_what_exists(
    store_dir: Path, hist: list[str], command: str, spec: str, needles: tuple[str, ...]
) -> None:
    line = fails(store_dir, 1, (command, spec), *needles)
    assert line.startswith(f"error: {spec}: ")  # names the whole REF:PATH


def test_show_unknown_top_level_field_lists_the_checkpoints_fields(
    store_dir: Path, hist: list[str]
) -> None:
    """The hint lists what can be asked for: top-level fields such as agent_tier and
    active_task_id work (``HEAD:agent_tier``), so they belong in it."""
    fails(store_dir, 1, ("show", "HEAD:nope"), "'nope'", "variables", "tasks", "agent_tier")


@pytest.mark.parametrize("command", ["show", "load"])
@pytest.mark.parametrize(
    "spec",
    ["HEAD:variables.", 'HEAD:"unclosed', "HEAD:", "HEAD:variables..x", "HEAD:.tasks", ":"],
)
def test_show_malformed_path_exits_2(
    store_dir: Path, hist: list[str], command: str, spec: str
) -> None:
    fails(store_dir, 2, (command, spec), "bad path")


@pytest.mark.parametrize("command", ["show", "load"])
def test_show_bad_ref_before_the_path(store_dir: Path, hist: list[str], command: str) -> None:
    fails(store_dir, 1, (command, "nosuch:variables.plan"), "'nosuch'", "main")
    fails(store_dir, 1, (command, "HEAD~9:tasks"), "'HEAD~9'")
    fails(store_dir, 1, (command, "tags/nope:tasks"), "'tags/nope'")
    fails(store_dir, 2, (command, "HEAD~x:tasks"), "'HEAD~x'")


def test_show_in_an_empty_store(store_dir: Path) -> None:
    fails(store_dir, 1, ("show", "HEAD:variables.plan"), "no checkpoints yet")


# --- sessions ------------------------------------------------------------------------------


def test_session_new_existing_name_exits_1_and_leaves_it(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "session", "new", "exp", "--from", "HEAD~2", "--no-switch"))
    line = fails(store_dir, 1, ("session", "new", "exp"), "sessions/exp", "already exists")
    assert "--force" not in line  # sessions cannot be forced over
    fails(store_dir, 1, ("session", "new", "main", "--from", "HEAD~3"), "sessions/main")
    with Store.open(store_dir) as store:
        assert store.get_commit("exp").checkpoint_id == hist[1]
        assert store.get_commit("main").checkpoint_id == hist[3]
        assert store.current_session == "main"


@pytest.mark.parametrize(
    "name", ["a b", "x..y", "HEAD", "@", "a:b", "x.lock", "end/", "a~1", "a^", "q?", ".hidden"]
)
def test_session_new_invalid_name_exits_2(store_dir: Path, hist: list[str], name: str) -> None:
    fails(store_dir, 2, ("session", "new", name), "invalid name", repr(name))


def test_session_new_from_a_bad_ref(store_dir: Path, hist: list[str]) -> None:
    fails(store_dir, 1, ("session", "new", "exp", "--from", "nosuch"), "'nosuch'")
    fails(store_dir, 1, ("session", "new", "exp", "--from", "HEAD~9"), "'HEAD~9'")
    fails(store_dir, 2, ("session", "new", "exp", "--from", "HEAD~x"), "'HEAD~x'")
    with Store.open(store_dir) as store:
        assert "exp" not in store.sessions()


def test_session_switch_unknown_exits_1_listing_sessions(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "session", "new", "exp", "--no-switch"))
    fails(store_dir, 1, ("session", "switch", "nope"), "'nope'", "main", "exp")
    fails(store_dir, 2, ("session", "switch", "a b"), "'a b'")
    with Store.open(store_dir) as store:
        assert store.current_session == "main"


def test_session_commands_in_an_empty_store(store_dir: Path) -> None:
    fails(store_dir, 1, ("session", "new", "exp"), "no checkpoints yet")
    fails(store_dir, 1, ("session", "switch", "main"), "'main'")
    assert ok(run_in(store_dir, "session", "list")).stdout == ""


# --- tags ----------------------------------------------------------------------------------


def test_tag_existing_exits_1_unless_forced(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "tag", "v1", "HEAD~3"))
    fails(store_dir, 1, ("tag", "v1"), "tags/v1", "already exists", "--force")
    fails(store_dir, 1, ("tag", "v1", "HEAD~3"), "tags/v1")  # even to the same checkpoint
    with Store.open(store_dir) as store:
        assert store.get_commit("tags/v1").checkpoint_id == hist[0]
    ok(run_in(store_dir, "tag", "v1", "--force"))
    with Store.open(store_dir) as store:
        assert store.get_commit("tags/v1").checkpoint_id == hist[3]


def test_tag_delete_errors(store_dir: Path, hist: list[str]) -> None:
    ok(run_in(store_dir, "tag", "keep"))
    fails(store_dir, 1, ("tag", "-d", "nope"), "'tags/nope'", "keep")
    fails(store_dir, 2, ("tag", "-d"), "--delete")
    fails(store_dir, 2, ("tag", "-d", "bad name"), "'bad name'")
    ok(run_in(store_dir, "tag", "-d", "keep"))
    fails(store_dir, 1, ("tag", "-d", "keep"), "'tags/keep'")  # already gone


@pytest.mark.parametrize("name", ["bad name", "x..y", "HEAD", "a:b", "v1.lock", "a~1"])
def test_tag_invalid_name_exits_2(store_dir: Path, hist: list[str], name: str) -> None:
    fails(store_dir, 2, ("tag", name), "invalid name", repr(name))


def test_tag_bad_ref(store_dir: Path, hist: list[str]) -> None:
    fails(store_dir, 1, ("tag", "v1", "nosuch"), "'nosuch'")
    fails(store_dir, 2, ("tag", "v1", "HEAD~x"), "'HEAD~x'")
    assert ok(run_in(store_dir, "tag", "--json")).stdout.strip() == "{}"


def test_a_tag_named_like_a_session_makes_the_bare_name_ambiguous(
    store_dir: Path, hist: list[str]
) -> None:
    ok(run_in(store_dir, "tag", "main", "HEAD~3"))
    for args in (("load", "main"), ("diff", "main"), ("show", "main:variables.plan")):
        fails(store_dir, 1, args, "ambiguous", "sessions/main", "tags/main")
    assert ok(run_in(store_dir, "show", "tags/main:variables.plan")).stdout == "draft\n"
    assert ok(run_in(store_dir, "show", "sessions/main:checkpoint_id")).stdout.strip() == hist[3]
    ok(run_in(store_dir, "diff"))  # HEAD is unaffected
