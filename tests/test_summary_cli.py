"""`ckpt summary`: every option, its budget through the real entry point, and error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ckptstore import Store
from ckptstore.summary import MAX_BUDGET, MIN_BUDGET
from ckptstore.tokens import estimate_text
from test_cli import assert_error, ckpt, ok
from test_summary import big_state

CKPT = Path(sys.executable).parent / "ckpt"


@pytest.fixture
def busy_store(store_dir: Path) -> Path:
    """A session of two checkpoints: 2,000 tasks, then a few changes."""
    state = big_state(2_000, seed=21)
    state.pop("checkpoint_id")
    state["variables"] = {"target_env": "staging", "region": "eu-west-1", "step": 1}
    with Store.open(store_dir) as store:
        store.commit(state, session="agent-1", notes="start")
        state["tasks"][0]["status"] = "failed"
        state["variables"].update(target_env="production", step=2)
        store.commit(state, session="agent-1", notes="deploy")
    return store_dir


def summary(store_dir: Path, *args: str) -> str:
    return ok(ckpt("--store", str(store_dir), "summary", *args)).stdout


@pytest.mark.parametrize(
    ("level", "budget"), [("minimal", 500), ("compact", 1000), ("standard", 2000), ("full", 4000)]
)
def test_each_level_holds_its_budget(busy_store: Path, level: str, budget: int) -> None:
    text = summary(busy_store, "--level", level)
    assert text.startswith("# Checkpoint ckpt-")
    assert estimate_text(text) <= budget


def test_the_default_is_compact_markdown(busy_store: Path) -> None:
    assert summary(busy_store) == summary(busy_store, "--level", "compact", "--format", "markdown")


@pytest.mark.parametrize("budget", [MIN_BUDGET, 300, 777, 5_000, 20_000])
@pytest.mark.parametrize("fmt", ["markdown", "text", "json"])
def test_max_tokens_overrides_the_level_and_is_never_exceeded(
    busy_store: Path, budget: int, fmt: str
) -> None:
    text = summary(busy_store, "--level", "full", "--max-tokens", str(budget), "-f", fmt)
    assert estimate_text(text) <= budget
    if fmt == "json":
        assert json.loads(text)["budget"] == budget


def test_text_and_json_formats(busy_store: Path) -> None:
    text = summary(busy_store, "-f", "text")
    assert not text.startswith("#")
    assert "\n  [!] #0 " in text
    doc = json.loads(summary(busy_store, "--format", "json", "--level", "standard"))
    assert doc["level"] == "standard"
    assert doc["tasks"]["total"] == 2_000
    shown, omitted = len(doc["tasks"]["shown"]), sum(doc["tasks"]["omitted"].values())
    assert shown + omitted == 2_000


def test_for_keys_and_session(busy_store: Path) -> None:
    text = summary(busy_store, "--for", "terraform", "--keys", "step", "--keys", "nope,agent_id")
    assert "context for terraform" in text
    for line in ('- target_env = "production"', "- step = 2", "- nope = (not set)"):
        assert line in text
    assert summary(busy_store, "--session", "agent-1") == summary(busy_store, "agent-1")


def test_since_shows_what_changed(busy_store: Path) -> None:
    text = summary(busy_store, "--since", "HEAD~1")
    head = ok(ckpt("--store", str(busy_store), "log", "--oneline")).stdout.split()
    assert f"changes since {head[3]}" in text  # the older checkpoint's id
    assert '- target_env: "staging" → "production"' in text
    assert "- task #0.status: " in text
    doc = json.loads(summary(busy_store, "--since", "HEAD~1", "-f", "json"))
    assert doc["changes"]["total"] == 3


def test_the_real_entry_point_prints_a_summary_for_a_pipe(busy_store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    done = subprocess.run(
        [str(CKPT), "summary", "--level", "minimal"],
        cwd=busy_store.parent, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stderr == ""
    assert estimate_text(done.stdout) <= 500
    assert "- Agent: agent-7 (tier 1)" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["--level", "huge"], 2, ["--level 'huge'", "minimal, compact, standard, full"]),
        (["-l", ""], 2, ["--level ''"]),
        (["--format", "yaml"], 2, ["--format 'yaml'", "markdown, text, json"]),
        (["--max-tokens", "12"], 2, ["--max-tokens 12", f"{MIN_BUDGET} to {MAX_BUDGET}"]),
        (["--max-tokens", "lots"], 2, ["--max-tokens", "lots"]),
        (["--for", "knitting"], 2, ["unknown task type 'knitting'", "terraform"]),
        (["HEAD~7"], 1, ["HEAD~7"]),
        (["no-such-session"], 1, ["no-such-session"]),
        (["--since", "ckpt-20990101-000000-deadbeef"], 1, ["ckpt-20990101-000000-deadbeef"]),
        (["HEAD~x"], 2, ["bad reference 'HEAD~x'"]),
    ],
)
def test_summary_errors_are_one_line(
    busy_store: Path, args: list[str], code: int, needles: list[str]
) -> None:
    assert_error(ckpt("--store", str(busy_store), "summary", *args), code, *needles)


def test_summary_without_a_store_or_checkpoints(tmp_path: Path, store_dir: Path) -> None:
    assert_error(ckpt("--store", str(tmp_path / "none"), "summary"), 1, "ckpt init")
    assert_error(ckpt("--store", str(store_dir), "summary"), 1, "no checkpoints")


def test_a_bad_tokenizer_setting_is_an_input_error(busy_store: Path) -> None:
    env: dict[str, Any] = {"CKPT_TOKENIZER": "sentencepiece"}
    assert_error(
        ckpt("--store", str(busy_store), "summary", env=env), 2, "CKPT_TOKENIZER", "sentencepiece"
    )
