"""Secrets: which variables are secret, kept durably, and never shown without --reveal."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from ckptstore import MalformedData, SecretPolicy, Store, redact
from ckptstore.secrets import REDACTED, SECRET_SETTING, mask_text, redact_path_value
from test_cli import ckpt, ok

SECRET = "sk-live-Zq8rT2vXw9"  # distinctive enough to grep for
OTHER_SECRET = "old-pw-4455667788"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_TOKEN", True), ("github_token", True), ("DB_PASSWORD", True),
        ("db_passwd", True), ("CLIENT_SECRET", True), ("OPENAI_API_KEY", True),
        ("aws_secret_access_key", True), ("SSH_PRIVATE_KEY_PEM", True), ("password", True),
        ("gcp_credentials", True), ("token", True),
        ("custom_key", False), ("cache_key", False), ("step", False), ("max_tokens", False),
        ("target_env", False), ("token_count", False),
    ],
)  # fmt: skip
def test_default_patterns(name: str, secret: bool) -> None:
    assert SecretPolicy().is_secret(name) is secret


def test_marked_names_and_configured_patterns() -> None:
    policy = SecretPolicy(patterns=("VAULT_*",), marked=frozenset({"custom_key"}))
    assert policy.is_secret("vault_addr")
    assert policy.is_secret("custom_key")
    assert not policy.is_secret("API_TOKEN")  # the defaults were replaced
    assert not policy.is_secret("CUSTOM_KEY")  # a marked name is matched exactly
    assert policy.with_marked(["x"]).is_secret("x")


def test_redact_hides_secret_values_everywhere_and_leaves_the_input_alone() -> None:
    state: dict[str, Any] = {
        "variables": {"API_TOKEN": SECRET, "short_token": "abc", "note": f"uses {SECRET}"},
        "tasks": [{"id": "1", "subject": f"rotate {SECRET} and abc", "status": "pending"}],
        "recent_outputs": [[SECRET, {"deep": SECRET}]],
        "custom": {"copied": SECRET},
    }
    original = json.loads(json.dumps(state))
    hidden = redact(state, SecretPolicy())
    assert state == original
    assert SECRET not in json.dumps(hidden)
    assert hidden["variables"]["API_TOKEN"] == REDACTED
    assert hidden["variables"]["short_token"] == REDACTED
    assert hidden["variables"]["note"] == f"uses {REDACTED}"
    # Secrets shorter than MIN_MASKED hide as values but are not searched for in text.
    assert hidden["tasks"][0]["subject"] == f"rotate {REDACTED} and abc"
    assert redact({"variables": {"x": 1}}, SecretPolicy()) == {"variables": {"x": 1}}
    assert mask_text(f"note with {SECRET}", state, SecretPolicy()) == f"note with {REDACTED}"
    variables, policy = state["variables"], SecretPolicy()
    assert redact_path_value(("variables", "API_TOKEN", "0"), "s", variables, policy) == REDACTED
    assert redact_path_value(("custom",), state["custom"], variables, policy) == {
        "copied": REDACTED
    }


def test_marked_names_survive_reopening_and_are_added_not_replaced(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        store.commit(variables={"custom_key": "v1", "plain": 1}, secret=["custom_key"])
        store.mark_secret(["other"])
        store.mark_secret(["other"])  # idempotent
    with Store.open(store_dir) as store:
        policy = store.secrets()
        assert policy.marked == {"custom_key", "other"}
        assert redact(store.load(), policy)["variables"] == {"custom_key": REDACTED, "plain": 1}


def test_a_damaged_list_of_marked_names_fails_closed(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        store.backend.set_setting(SECRET_SETTING, "{not json")
        with pytest.raises(MalformedData, match="list of secret variables"):
            store.secrets()
    with Store.open(store_dir) as store:
        store.commit(variables={"a": 1})
    result = ckpt("--store", str(store_dir), "load")
    assert result.exit_code == 1
    assert "list of secret variables" in result.stderr


def _mark(store_dir: str, names: list[str], barrier: Any) -> None:
    with Store.open(store_dir) as store:
        barrier.wait()
        for name in names:
            store.mark_secret([name])


def test_concurrent_processes_marking_different_names_lose_none(store_dir: Path) -> None:
    # Each mark reads the list and writes it back: without the store's lock, racing
    # processes overwrite each other's names (this fails when the lock is taken out).
    batches = [[f"p{p}_name_{i}" for i in range(25)] for p in range(4)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(batches))
    procs = [ctx.Process(target=_mark, args=(str(store_dir), b, barrier)) for b in batches]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    with Store.open(store_dir) as store:
        assert store.secrets().marked == {name for batch in batches for name in batch}


# --- the commands: grep every output -------------------------------------------------


@pytest.fixture
def secret_store(store_dir: Path) -> Path:
    """Two checkpoints with a marked secret, a pattern secret and copies of them."""
    s = str(store_dir)
    first = ["--secret-var", "custom_key", OTHER_SECRET, "--var", "step", "1"]
    ok(ckpt("--store", s, "commit", *first))
    ok(
        ckpt(
            "--store", s, "commit", "--secret-var", "custom_key", SECRET,
            "--var", "API_TOKEN", SECRET + "-2", "--var", "note", f"copy of {SECRET}",
            "--var", "step", "2", "-m", f"rotated to {SECRET}",
        )
    )  # fmt: skip
    return store_dir


OUTPUTS = [
    ["load"], ["load", "--json"], ["show", "HEAD~1"], ["load", "HEAD:variables"],
    ["load", "HEAD:variables.custom_key"], ["load", "HEAD:variables.note", "--json"],
    ["log"], ["log", "--json"], ["log", "--oneline"], ["log", "--key", "variables.custom_key"],
    ["log", "--key", "variables.custom_key", "--json"], ["log", "--key", "variables.note"],
    ["summary"], ["summary", "--level", "full"], ["summary", "--level", "minimal"],
    ["summary", "-f", "json", "--level", "full"], ["summary", "-f", "text", "--keys", "custom_key"],
    ["summary", "--since", "HEAD~1"], ["summary", "--since", "HEAD~1", "-f", "json"],
    ["summary", "--for", "governance", "--keys", "custom_key,API_TOKEN"],
    ["commit", "--var", "x", "1"], ["commit", "--var", "y", "2", "--json"],
    ["diff"], ["diff", "--json"], ["diff", "--full", "--all"], ["diff", "--stat"],
]  # fmt: skip


@pytest.mark.parametrize("args", OUTPUTS, ids=" ".join)
def test_no_output_shows_a_secret_without_reveal(secret_store: Path, args: list[str]) -> None:
    result = ok(ckpt("--store", str(secret_store), *args))
    for value in (SECRET, OTHER_SECRET):
        assert value not in result.stdout
        assert value not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["load"], ["load", "--json"], ["load", "HEAD:variables.custom_key"],
     ["log", "--key", "variables.custom_key"], ["summary", "--level", "full"],
     ["diff"], ["diff", "--json"],
     ["summary", "--since", "HEAD~1"], ["restore"], ["restore", "-f", "json"]],
    ids=" ".join,
)  # fmt: skip
def test_reveal_and_restore_show_them(secret_store: Path, args: list[str]) -> None:
    reveal = [] if args[0] == "restore" else ["--reveal"]
    result = ok(ckpt("--store", str(secret_store), *args, *reveal))
    assert SECRET in result.stdout


def test_load_keeps_the_shape_of_the_checkpoint(secret_store: Path) -> None:
    hidden = json.loads(ok(ckpt("--store", str(secret_store), "load", "--json")).stdout)
    shown = json.loads(ok(ckpt("--store", str(secret_store), "load", "--json", "--reveal")).stdout)
    assert hidden.keys() == shown.keys()
    assert hidden["variables"] == {
        "API_TOKEN": REDACTED, "custom_key": REDACTED, "note": f"copy of {REDACTED}", "step": 2,
    }  # fmt: skip
    assert shown["variables"]["custom_key"] == SECRET


def test_a_redacted_state_is_not_committed_back_over_the_secret(
    secret_store: Path, tmp_path: Path
) -> None:
    s = str(secret_store)
    path = tmp_path / "state.json"
    path.write_text(ok(ckpt("--store", s, "load", "--json")).stdout, encoding="utf-8")
    before = ok(ckpt("--store", s, "log", "--oneline")).stdout
    result = ckpt("--store", s, "commit", "--state", str(path))
    assert result.exit_code == 2
    assert "variable 'API_TOKEN' is [redacted]" in result.stderr
    assert "--reveal" in result.stderr
    assert ok(ckpt("--store", s, "log", "--oneline")).stdout == before  # nothing written
    path.write_text(ok(ckpt("--store", s, "load", "--json", "--reveal")).stdout, "utf-8")
    ok(ckpt("--store", s, "commit", "--state", str(path)))
    with Store.open(secret_store) as store:
        assert store.load()["variables"]["custom_key"] == SECRET


def test_secret_var_values_are_kept_as_strings(store_dir: Path) -> None:
    ok(ckpt("--store", str(store_dir), "commit", "--secret-var", "PIN_TOKEN", "0042"))
    with Store.open(store_dir) as store:
        assert store.load()["variables"] == {"PIN_TOKEN": "0042"}
