"""``ckpt prune``, ``gc``, ``fsck`` and ``stats``: output, --json, --dry-run, errors, progress."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ckpt_cli.maintenance import LARGE
from ckptstore import Store
from ckptstore.event_commits import PUT, WRITES
from ckptstore.trees import INLINE_MAX
from storetools import all_ids, backdate, flip_byte, make_garbage, publish_event, state
from test_cli import CKPT_SCRIPT, assert_error, ckpt, ok, run


def fill(store_dir: Path, count: int = 6, session: str = "main") -> list[str]:
    with Store.open(store_dir) as store:
        return [store.commit(state(i), session=session, notes=f"step {i}").id for i in range(count)]


def as_json(*args: str) -> Any:
    return json.loads(ok(ckpt(*args, "--json")).stdout)


# --- gc ------------------------------------------------------------------------------------


def test_gc_removes_old_garbage_and_reports_it(store_dir: Path) -> None:
    fill(store_dir)
    with Store.open(store_dir) as store:
        make_garbage(store)
        before = len(all_ids(store))
    backdate(store_dir, 7200)
    result = ok(ckpt("gc", "--store", str(store_dir), "--reflog-expiry", "0s"))
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("removed ")
    assert "reflog entries" in lines[0]
    assert lines[-1].startswith("store ")
    with Store.open(store_dir) as store:
        removed = before - len(all_ids(store))
        assert removed > 0
        assert lines[0].startswith(f"removed {removed:,} objects")
        assert store.fsck().ok
    again = as_json("gc", "--store", str(store_dir))
    assert again["objects_removed"] == 0


def test_gc_json_and_dry_run(store_dir: Path) -> None:
    fill(store_dir)
    with Store.open(store_dir) as store:
        make_garbage(store)
    backdate(store_dir, 7200)
    with Store.open(store_dir) as store:
        before = all_ids(store)
    dry = as_json("gc", "--dry-run", "--reflog-expiry", "0s", "--store", str(store_dir))
    assert dry["dry_run"] is True
    assert dry["objects_removed"] > 0
    assert set(dry) >= {
        *("objects_removed", "bytes_removed", "objects_reachable", "objects_young"),
        *("reflog_expired", "disk_before", "disk_after", "grace", "reflog_expiry"),
    }
    with Store.open(store_dir) as store:
        assert all_ids(store) == before
    text = ok(ckpt("gc", "-n", "--reflog-expiry", "0s", "--store", str(store_dir))).stdout
    assert text.startswith(f"would remove {dry['objects_removed']:,} objects")
    real = as_json("gc", "--reflog-expiry", "0s", "--store", str(store_dir))
    assert real["objects_removed"] == dry["objects_removed"]
    assert real["dry_run"] is False


def test_gc_compact(store_dir: Path) -> None:
    fill(store_dir)
    result = as_json("gc", "--compact", "--store", str(store_dir))
    assert result["objects_removed"] == 0
    assert result["disk_after"] <= result["disk_before"]
    ok(ckpt("fsck", "--store", str(store_dir)))


def test_gc_keeps_young_garbage_by_default(store_dir: Path) -> None:
    fill(store_dir)
    with Store.open(store_dir) as store:
        make_garbage(store)
    result = as_json("gc", "--reflog-expiry", "0s", "--store", str(store_dir))
    assert result["objects_removed"] == 0
    assert result["objects_young"] > 0
    assert result["grace"] == 3600
    text = ok(ckpt("gc", "--reflog-expiry", "0s", "--store", str(store_dir))).stdout
    assert "unreachable ones within the 1h grace period" in text


def test_gc_reads_its_grace_and_reflog_expiry_from_the_config(store_dir: Path) -> None:
    """[gc] in config.toml sets what the flags leave unsaid; a flag still wins."""
    fill(store_dir)
    with Store.open(store_dir) as store:
        make_garbage(store)
    backdate(store_dir, 7200)  # older than the default grace (1h), younger than 1d
    (store_dir / "config.toml").write_text('[gc]\ngrace = "1d"\nreflog_expiry = "0s"\n')
    dry = as_json("gc", "--dry-run", "--store", str(store_dir))
    assert (dry["grace"], dry["reflog_expiry"]) == (86400, 0)
    assert dry["objects_removed"] == 0
    assert dry["objects_young"] > 0
    (store_dir / "config.toml").write_text('[gc]\ngrace = "0s"\nreflog_expiry = "0s"\n')
    flagged = as_json("gc", "--dry-run", "--grace", "3h", "--store", str(store_dir))
    assert (flagged["grace"], flagged["objects_removed"]) == (10800, 0)
    real = as_json("gc", "--store", str(store_dir))
    assert real["grace"] == 0
    assert real["objects_removed"] > 0
    with Store.open(store_dir) as store:
        assert store.prune(dry_run=True).gc.grace == 0  # the API reads it too
    ok(ckpt("fsck", "--store", str(store_dir)))


@pytest.mark.parametrize(
    ("text", "needle"),
    [('[gc]\ngrace = "soon"\n', "gc.grace"), ("[gc]\nreflog_expiry = 90\n", "gc.reflog_expiry"),
     ('[gc]\ngrase = "1h"\n', "grase")],
)  # fmt: skip
def test_gc_refuses_a_bad_gc_section(store_dir: Path, text: str, needle: str) -> None:
    fill(store_dir)
    (store_dir / "config.toml").write_text(text)
    line = assert_error(ckpt("gc", "--store", str(store_dir)), 2, needle, "config.toml")
    assert "config.toml:2:" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--grace", "soon"], "--grace"), (["--grace", "-1h"], "--grace"),
     (["--reflog-expiry", "90"], "--reflog-expiry")],
)  # fmt: skip
def test_gc_rejects_malformed_durations(store_dir: Path, args: list[str], needle: str) -> None:
    assert_error(ckpt("gc", *args, "--store", str(store_dir)), 2, needle, "duration")


def test_gc_without_a_store_exits_1(tmp_path: Path) -> None:
    assert_error(ckpt("gc", "--store", str(tmp_path / "nowhere")), 1, "no ckpt store")


def test_gc_stops_and_deletes_nothing_when_an_object_is_missing(store_dir: Path) -> None:
    ids = fill(store_dir)
    with Store.open(store_dir) as store:
        make_garbage(store)
        tree = bytes.fromhex(store.get_commit(ids[1]).tree)
        store.backend.delete_objects([tree])
        before = all_ids(store)
    backdate(store_dir, 7200)
    line = assert_error(ckpt("gc", "--reflog-expiry", "0s", "--store", str(store_dir)), 1)
    # the tree, or a newer tree stored as a delta against it (its base is gone)
    assert tree.hex() in line or "stored against a base that is missing" in line
    assert "deleted nothing" in line
    with Store.open(store_dir) as store:
        assert all_ids(store) == before


# --- prune ---------------------------------------------------------------------------------


def test_prune_keeps_n_and_log_marks_the_cut(store_dir: Path) -> None:
    ids = fill(store_dir, 8)
    result = ok(ckpt("prune", "--keep", "3", "--grace", "0s", "--store", str(store_dir)))
    assert result.stdout.splitlines()[0] == "session main: keeping 3 of 8 checkpoints, removing 5"
    assert "removed 5 checkpoints (--keep 3)" in result.stdout
    log = ok(ckpt("log", "--store", str(store_dir))).stdout
    assert log.rstrip().endswith("~ history pruned: 5 earlier checkpoint(s) ~")
    entries = as_json("log", "--store", str(store_dir))
    assert [e["id"] for e in entries] == ids[:-4:-1]
    assert [e["history_pruned"] for e in entries] == [0, 0, 5]
    loaded = as_json("load", ids[5], "--store", str(store_dir))
    assert loaded["variables"]["step"] == 5
    ok(ckpt("fsck", "--store", str(store_dir)))


def test_prune_dry_run_lists_what_would_go(store_dir: Path) -> None:
    ids = fill(store_dir, 5)
    with Store.open(store_dir) as store:
        before = all_ids(store)
    result = ok(ckpt("prune", "--keep", "2", "--dry-run", "--store", str(store_dir)))
    lines = result.stdout.splitlines()
    assert lines[0] == "session main: keeping 2 of 5 checkpoints, would remove 3"
    listed = [line.split()[1] for line in lines[1:4]]
    with Store.open(store_dir) as store:
        assert listed == [store.get_commit(c).checkpoint_id for c in ids[2::-1]]
        assert all_ids(store) == before
        assert store.backend.prune_marks() == {}
    assert "step 2" in lines[1]
    report = as_json("prune", "--keep", "2", "-n", "--store", str(store_dir))
    assert report["dry_run"] is True
    assert report["removed"] == 3
    assert report["policy"] == {"last": 2}
    (session,) = report["sessions"]
    assert [c["id"] for c in session["removed"]] == ids[2::-1]
    assert [c["reasons"] for c in session["kept"]] == [["head", "last"], ["last"]]


def test_prune_policies_and_session_limits(store_dir: Path) -> None:
    fill(store_dir, 4, "a")
    fill(store_dir, 4, "b")
    report = as_json(
        "prune", "--keep", "1", "--keep-within", "1h", "-s", "a", "--grace", "0s",
        "--store", str(store_dir),
    )  # fmt: skip
    assert report["policy"] == {"last": 1, "within": "1h"}
    assert [s["session"] for s in report["sessions"]] == ["a"]
    assert report["removed"] == 0  # all four were made within the hour
    report = as_json("prune", "--keep-daily", "1", "--session", "a", "--store", str(store_dir))
    assert report["policy"] == {"daily": 1}
    assert report["removed"] == 3
    assert len(as_json("log", "--session", "b", "--store", str(store_dir))) == 4


def test_prune_without_rules_keeps_fifty(store_dir: Path) -> None:
    fill(store_dir, 3)
    report = as_json("prune", "--store", str(store_dir))
    assert report["policy"] == {"last": 50}
    assert report["removed"] == 0


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [(["--keep", "-1"], 2, "--keep"), (["--keep-within", "a week"], 2, "--keep-within"),
     (["--keep-daily", "x"], 2, "--keep-daily"), (["--session", "ghost"], 1, "ghost"),
     (["--session", "bad name"], 2, "bad name"), (["--grace", "1y"], 2, "--grace")],
)  # fmt: skip
def test_prune_errors(store_dir: Path, args: list[str], code: int, needle: str) -> None:
    fill(store_dir, 3)
    with Store.open(store_dir) as store:
        before = all_ids(store)
    assert_error(ckpt("prune", *args, "--store", str(store_dir)), code, needle)
    with Store.open(store_dir) as store:
        assert all_ids(store) == before
        assert store.backend.prune_marks() == {}


# --- fsck ----------------------------------------------------------------------------------


def test_fsck_of_a_sound_store(store_dir: Path) -> None:
    fill(store_dir)
    result = ok(ckpt("fsck", "--store", str(store_dir)))
    assert result.stdout.splitlines()[-1] == "ok"
    assert result.stdout.startswith("checked ")
    report = as_json("fsck", "--store", str(store_dir))
    assert report["ok"] is True
    assert report["problems"] == []


def test_fsck_reports_damage_and_exits_1(store_dir: Path) -> None:
    ids = fill(store_dir)
    with Store.open(store_dir) as store:
        tree = bytes.fromhex(store.get_commit(ids[2]).tree)
    flip_byte(store_dir, tree, 10)
    result = ckpt("fsck", "--store", str(store_dir))
    assert result.exit_code == 1
    assert f"corrupt object {tree.hex()}" in result.stdout
    assert "referenced by " in result.stdout
    assert ids[2] in result.stdout.split("referenced by ", 1)[1]
    assert result.stdout.splitlines()[-1] == "1 problems"
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: fsck found 1 problem(s)")
    data = ckpt("fsck", "--json", "--store", str(store_dir))
    assert data.exit_code == 1
    report = json.loads(data.stdout)
    assert report["ok"] is False
    (problem,) = report["problems"]
    assert problem["kind"] == "corrupt"
    assert problem["object_id"] == tree.hex()
    # the commit, and perhaps a newer tree stored as a delta against this one
    assert ids[2] in problem["referenced_by"]
    assert all(r == ids[2] or r.endswith("(as its base)") for r in problem["referenced_by"])


def test_fsck_reports_a_deleted_object(store_dir: Path) -> None:
    ids = fill(store_dir)
    with Store.open(store_dir) as store:
        store.backend.delete_objects([bytes.fromhex(ids[1])])
    report = json.loads(ckpt("fsck", "--json", "--store", str(store_dir)).stdout)
    (problem,) = report["problems"]
    assert (problem["kind"], problem["object_id"]) == ("missing", ids[1])
    assert problem["referenced_by"][0] == ids[2]


def test_fsck_exit_code_from_the_real_entry_point(store_dir: Path, tmp_path: Path) -> None:
    ids = fill(store_dir, 2)
    done = run([str(CKPT_SCRIPT), "fsck", "--store", str(store_dir)], cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    flip_byte(store_dir, bytes.fromhex(ids[0]), 3)
    done = run([sys.executable, "-m", "ckptstore", "fsck", "--store", str(store_dir)], cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


# --- stats ---------------------------------------------------------------------------------


def test_stats_text_and_json(store_dir: Path) -> None:
    fill(store_dir, 5)
    with Store.open(store_dir) as store:  # a second large value for --top 2
        store.commit({**state(5), "variables": {"log": "entry " * 100}}, session="main")
    text = ok(ckpt("stats", "--store", str(store_dir))).stdout
    assert "checkpoints  6\n" in text
    assert "LangGraph" not in text
    assert "dedup" in text
    assert "largest values" in text
    data = as_json("stats", "--top", "2", "--store", str(store_dir))
    assert data["checkpoints"] == 6
    assert data["events"] == 0
    assert data["sessions"] == 1
    assert len(data["largest"]) == 2
    assert data["total_ratio"] > 1
    assert set(data["objects"]) == {"blob", "tree", "commit"}


def test_stats_counts_langgraph_writes_apart(store_dir: Path) -> None:
    fill(store_dir, 2)
    with Store.open(store_dir) as store:  # as the LangGraph saver writes them
        publish_event(store, "t-1", PUT, "c1", {"n": 1})
        publish_event(store, "t-1", WRITES, "c1", {"n": 1}, [("n", 2)])
        publish_event(store, "t-1", WRITES, "c1", {"n": 1}, [("n", 2), ("m", 3)])
        publish_event(store, "t-1", PUT, "c2", {"n": 2})
    text = ok(ckpt("stats", "--store", str(store_dir))).stdout
    assert "checkpoints  4 (plus 2 LangGraph write events)\n" in text
    data = as_json("stats", "--store", str(store_dir))
    assert (data["sessions"], data["checkpoints"], data["events"]) == (2, 4, 2)


# --- progress ------------------------------------------------------------------------------


def test_no_progress_in_a_pipe_or_with_json(store_dir: Path) -> None:
    fill(store_dir, 3)
    for command in ("gc", "fsck", "stats"):
        assert ckpt(command, "--store", str(store_dir)).stderr == ""
        assert ckpt(command, "--json", "--store", str(store_dir)).stderr == ""


def test_progress_can_be_forced(store_dir: Path) -> None:
    fill(store_dir, 3)
    result = ok(ckpt("gc", "--progress", "--store", str(store_dir)))
    assert "mark" in result.stderr
    assert "reclaim" in result.stderr
    assert result.stdout.startswith("removed 0 objects")
    assert "check" in ok(ckpt("fsck", "--progress", "--store", str(store_dir))).stderr
    assert ckpt("fsck", "--no-progress", "--store", str(store_dir)).stderr == ""


def test_progress_appears_on_a_terminal_for_a_large_store(store_dir: Path, tmp_path: Path) -> None:
    with Store.open(store_dir) as store:
        # Task records longer than INLINE_MAX: each its own blob, so the store is large.
        store.commit(state(0, tasks=LARGE + 500, tag="x" * INLINE_MAX), session="main")
        assert len(all_ids(store)) > LARGE
    for command in ("fsck", "gc"):
        primary, secondary = pty.openpty()
        with subprocess.Popen(
            [str(CKPT_SCRIPT), command, "--store", str(store_dir)],
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            cwd=tmp_path,
        ) as child:
            os.close(secondary)
            seen = b""
            while True:  # read as it comes, so the child never blocks on a full terminal
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child is gone and the terminal closed
                    break
                if not chunk:
                    break
                seen += chunk
            os.close(primary)
            assert child.wait(timeout=120) == 0
        assert (b"check" if command == "fsck" else b"mark") in seen
        assert b"\x1b[" in seen  # drawn for a terminal
