"""Smoke test of the benchmark harness: the tiny profile through run.py's own code path.

Structure only (every load verified, sizes recorded, a damaged load fails the run),
never timings. Peers that cannot run here are skipped by the harness itself: the core
test extras do not install LangGraph, and git or zstd may be absent.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import measure  # noqa: E402
import run as bench_run  # noqa: E402
import techniques  # noqa: E402
from peers.json_files import JsonFilesPeer  # noqa: E402
from workload import generate, profile  # noqa: E402

HAS_LANGGRAPH = importlib.util.find_spec("langgraph") is not None
HAS_GIT = shutil.which("git") is not None
TINY = profile("tiny")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "result.json"
    md = work / "result.md"
    argv = ["--profile", "tiny", "--workdir", str(work), "--json", str(out)]
    argv += ["--markdown", str(md), "--load-samples", "7", "--cli-samples", "3"]
    argv += ["--startup-samples", "1", "--twin-history", "10"]
    assert bench_run.main(argv) == 0
    raw = json.loads(out.read_text())
    raw["markdown"] = md.read_text()
    raw["workdir"] = work
    return raw


def test_every_load_is_verified(tiny_run: dict[str, Any]) -> None:
    result = tiny_run["result"]
    n = TINY.checkpoints
    assert result["checkpoints"] == n
    assert result["sessions"] == 1 + TINY.forks
    milestones = result["milestones"]
    assert milestones == [n]  # the tiny profile is below the first milestone (100)
    for name, peer in result["peers"].items():
        if name == "floor":
            assert peer["verified"] == n  # the whole history decompressed and compared
            continue
        # Per milestone 7 random loads and 7 of the fixed early set; 7 early ones from
        # the twin store of 10 checkpoints and 7 from the full one; then every checkpoint.
        assert peer["verified"] == 2 * 7 * len(milestones) + 2 * 7 + n, name
        assert len(peer["loads"][str(n)]) == 7
        assert len(peer["early"][str(n)]) == 7
        assert len(peer["twin_short"]) == len(peer["twin_long"]) == 7


def test_every_available_peer_ran_or_says_why(tiny_run: dict[str, Any]) -> None:
    result = tiny_run["result"]
    ran, skipped = set(result["peers"]), result["skipped"]
    assert {"ckptstore", "json-files", "floor"} <= ran
    assert ("sqlite-saver" in ran) == HAS_LANGGRAPH
    assert ("git" in ran) == HAS_GIT
    assert ran | set(skipped) == set(bench_run.FACTORIES)
    for name, why in skipped.items():
        assert f"Skipped {name}: {why}" in tiny_run["markdown"]


def test_sizes_commits_and_cli_steps_are_recorded(tiny_run: dict[str, Any]) -> None:
    result = tiny_run["result"]
    n = TINY.checkpoints
    cli_steps = result["cli_steps"]
    assert cli_steps == 3
    for name, peer in result["peers"].items():
        assert peer["final"]["apparent"] > 0, name
        assert peer["final"]["allocated"] > 0, name
        if name != "floor":
            assert len(peer["commit_s"]) == n - cli_steps, name
    us = result["peers"]["ckptstore"]
    # Every other CLI step is handed to a running `ckpt serve`, from the second on.
    assert len(us["cli_s"]) == 2
    assert len(us["cli_served_s"]) == 1
    assert "through `ckpt serve`" in tiny_run["markdown"]
    assert len(result["bytes_per_commit"]) == n - cli_steps
    assert all(b > 0 for b in result["bytes_per_commit"])
    kinds = {k for k in us["extra"] if not k.startswith("_")}
    assert {"commit", "tree"} <= kinds
    if HAS_GIT:
        git = result["peers"]["git"]
        assert len(git["cli_s"]) == cli_steps
        assert git["extra"]["before_gc"]["apparent"] > 0
    startup = result["startup"]
    assert len(startup["ckpt commit --var"]) == 1
    assert len(startup["ckpt commit --var, handed to ckpt serve"]) == 1  # checked as served
    # One commit with [serve] auto: run in its own process, it started the server.
    assert (
        len(startup["ckpt commit --var, [serve] auto, from no server"]),
        startup["auto_served"],
    ) == (1, 0)
    assert startup["importtime"]["modules"] > 0


def test_report_states_each_target_it_can_judge(tiny_run: dict[str, Any]) -> None:
    text = tiny_run["markdown"]
    assert "| metric | ckptstore |" in text
    assert "loads verified equal to the commit" in text
    assert "load flat: 20 checkpoints of history within 1.2x of 10" in text
    if HAS_GIT:
        assert "storage ≤ 0.75x git" in text
        assert "`ckpt commit` CLI ≤ 4x" in text
    if HAS_LANGGRAPH:
        assert "≥ 1.5x SqliteSaver" in text


def test_the_stores_are_removed_unless_kept(tiny_run: dict[str, Any]) -> None:
    assert not Path(tiny_run["result"]["root"]).exists()


def test_a_damaged_load_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = JsonFilesPeer.load

    def damaged(self: JsonFilesPeer, key: Any) -> dict[str, Any]:
        data = real(self, key)
        data["tasks"] = data["tasks"][:-1]
        return data

    monkeypatch.setattr(JsonFilesPeer, "load", damaged)
    argv = ["--profile", "tiny", "--workdir", str(tmp_path), "--peers", "ckptstore,json-files"]
    assert bench_run.main([*argv, "--startup-samples", "0", "--cli-samples", "0"]) == 1
    err = capsys.readouterr().err
    assert "json-files: checkpoint #" in err
    assert "different ['tasks']" in err


def test_verify_names_missing_fields() -> None:
    peer = JsonFilesPeer()
    state = next(generate(TINY)).state
    expected = measure._digests(state)
    measure.verify(peer, 0, dict(state), expected)
    with pytest.raises(measure.Mismatch, match="added or missing"):
        measure.verify(peer, 0, {k: v for k, v in state.items() if k != "phase"}, expected)


def test_workload_is_deterministic_by_seed() -> None:
    first = [s.state for s in generate(TINY, seed=3)]
    again = [s.state for s in generate(TINY, seed=3)]
    other = [s.state for s in generate(TINY, seed=4)]
    assert json.dumps(first) == json.dumps(again)
    assert json.dumps(first) != json.dumps(other)


def test_workload_dynamics() -> None:
    steps = list(generate(profile("short", quick=True)))
    states = [s.state for s in steps]
    assert all(len(s["recent_outputs"]) == 20 for s in states)
    for a, b in pairwise(states):
        assert a["dependencies"] != b["dependencies"]  # last_checked refreshed every step
        changed = [t for t, u in zip(a["tasks"], b["tasks"], strict=False) if t != u]
        assert 1 <= len(changed) <= 3
        assert b["parent_checkpoint_id"] == a["checkpoint_id"]
    big = [v for v in states[-1]["variables"].values() if isinstance(v, str) and len(v) > 4096]
    assert len(big) == 4
    assert all(5_000 <= len(v) <= 50_000 for v in big)


def test_fleet_forks_from_one_base() -> None:
    steps = list(generate(TINY))
    forks = [s for s in steps if s.fork_of is not None]
    assert [s.session for s in forks] == ["fork-00", "fork-01"]
    base_last = [s for s in steps if s.session == "main"][-1].state
    assert all(s.state["parent_checkpoint_id"] == base_last["checkpoint_id"] for s in forks)


def test_bigstate_changes_exactly_three_entries() -> None:
    states = [s.state for s in generate(profile("bigstate", quick=True))]
    for a, b in pairwise(states):
        tasks = sum(t != u for t, u in zip(a["tasks"], b["tasks"], strict=True))
        names = a["variables"].keys() | b["variables"].keys()
        variables = sum(a["variables"].get(k) != b["variables"].get(k) for k in names)
        assert (tasks, variables) == (2, 1)


def test_technique_prototypes_account_for_every_new_object() -> None:
    result = techniques.measure("tiny")
    per = result["per_checkpoint"]
    assert result["commits"] == TINY.base_steps  # the base session only
    today = {k.split(":")[0]: v for k, v in per.items() if "(today)" in k}
    # Small records now live inline in tree nodes: "small" blobs are the rare ones between
    # INLINE_MAX and 2 KiB, which the tiny profile may not have.
    assert {"large", "trees"} <= set(today) <= {"small", "large", "trees"}
    # Each alternative covers exactly the objects of its group that are stored today.
    for key, v in per.items():
        group = key.split(":")[0]
        if group in today:
            assert v["raw"] == pytest.approx(today[group]["raw"]), key
    pack = per["commit: all new objects in one frame, delta vs what they replace"]
    assert pack["raw"] == pytest.approx(sum(v["raw"] for v in today.values()))
    assert pack["objects"] == 1
