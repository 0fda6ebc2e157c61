"""Import and export of the original skill's files: lossless round trips, forks, cycles,
corrupt files, idempotence, and original ids that stay usable as REFs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import (
    InvalidOption,
    MalformedData,
    RevisionNotFound,
    Store,
    export_checkpoints,
    import_checkpoints,
)
from ckptstore.commit_object import Commit
from ckptstore.decoding import decode

T0 = "2026-01-23T10:00:00"


def stamp(minute: int) -> str:
    return f"2026-01-23T12:{minute // 60:02d}:{minute % 60:02d}.000000+00:00"


def make(
    name: str,
    minute: int,
    parent: str | None,
    session: str | None = "agent-1",
    **fields: Any,
) -> dict[str, Any]:
    """A checkpoint file's content in the original format (every field the seed shows)."""
    data: dict[str, Any] = {
        "checkpoint_id": f"ckpt-20260123-12{minute // 60:02d}{minute % 60:02d}-{name}",
        "created_at": stamp(minute),
        "session_id": session,
        "phase": {
            "name": "Phase 5: Agent Bootstrapping",
            "number": 5,
            "status": "in_progress",
            "started_at": f"{T0}+00:00",
            "notes": "Working on checkpoint skill",
        },
        "phases_completed": [1, 2, 3, 4],
        "tasks": [
            {"id": str(i), "subject": f"task {i}", "status": "completed" if i < minute % 7 else
             "pending", "owner": None, "blocks": [], "blocked_by": []}
            for i in range(6)
        ],
        "active_task_id": str(minute % 6),
        "dependencies": [
            {"name": "vault", "type": "service", "status": "available",
             "endpoint": "https://127.0.0.1:8200", "last_checked": stamp(minute)}
        ],
        "variables": {"step": minute, "label": name, "ratio": 0.5, "nested": {"a": [1, None]}},
        "recent_outputs": [
            {"type": "evidence", "id": f"evd-{name}", "action": "terraform", "success": True,
             "timestamp": stamp(minute)}
        ],
        "agent_id": "my-agent",
        "agent_tier": 1,
        "content_hash": f"{minute:064x}",
        "parent_checkpoint_id": parent,
        "estimated_tokens": 400 + minute,
    }  # fmt: skip
    data.update(fields)
    return data


def write_files(directory: Path, checkpoints: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)
    for data in checkpoints:
        (directory / f"{data['checkpoint_id']}.json").write_text(json.dumps(data, indent=2))
    return {d["checkpoint_id"]: d for d in checkpoints}


def branching_chain() -> list[dict[str, Any]]:
    """agent-1: a1 → a2 → a3 → a4, and a fork at a2: b3 → b4 (the newest of all);
    agent-2: c1 (child of a1, in another session) → c2; d1 has a parent nobody has;
    e1 has no session_id; f1's session_id is not a valid session name."""
    a1 = make("aaaaaaa1", 1, None)
    a2 = make("aaaaaaa2", 2, a1["checkpoint_id"])
    a3 = make("aaaaaaa3", 3, a2["checkpoint_id"])
    b3 = make("bbbbbbb3", 4, a2["checkpoint_id"])
    a4 = make("aaaaaaa4", 5, a3["checkpoint_id"])
    b4 = make("bbbbbbb4", 9, b3["checkpoint_id"])
    c1 = make("ccccccc1", 6, a1["checkpoint_id"], "agent-2")
    c2 = make("ccccccc2", 7, c1["checkpoint_id"], "agent-2", notes="a top-level notes field")
    d1 = make("ddddddd1", 8, "ckpt-20260101-000000-0000dead", "agent-3")
    e1 = make("eeeeeee1", 10, None, None)
    f1 = make("fffffff1", 11, None, "sess 1/../x")
    return [a1, a2, a3, b3, a4, b4, c1, c2, d1, e1, f1]


def exported_files(directory: Path) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def ids(report: Any, status: str) -> list[str]:
    return [e.checkpoint_id for e in report.by_status(status)]


# --- round trip -------------------------------------------------------------------------------


def test_import_then_export_gives_the_original_files_back(store: Store, tmp_path: Path) -> None:
    originals = write_files(tmp_path / "in", branching_chain())
    report = import_checkpoints(store, [tmp_path / "in"], default_session="imported")
    assert ids(report, "rejected") == []
    assert sorted(ids(report, "imported")) == sorted(originals)
    export_checkpoints(store, directory=tmp_path / "out", all_sessions=True)
    out = exported_files(tmp_path / "out")
    assert out == {f"{cid}.json": data for cid, data in originals.items()}


def test_files_are_imported_parents_first_and_by_time(store: Store, tmp_path: Path) -> None:
    write_files(tmp_path / "in", branching_chain())
    report = import_checkpoints(store, [tmp_path / "in"], default_session="imported")
    order = [cid.rsplit("-", 1)[1] for cid in ids(report, "imported")]
    assert order == [
        "aaaaaaa1", "aaaaaaa2", "aaaaaaa3", "bbbbbbb3", "aaaaaaa4", "ccccccc1", "ccccccc2",
        "ddddddd1", "bbbbbbb4", "eeeeeee1", "fffffff1",
    ]  # fmt: skip


def test_sessions_come_from_session_id_and_forks_become_sessions(
    store: Store, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "in", branching_chain())
    by_name = {cid.rsplit("-", 1)[1]: cid for cid in files}
    report = import_checkpoints(store, [tmp_path / "in"], default_session="imported")
    fork = f"agent-1/{by_name['aaaaaaa3']}"
    assert report.forks == [fork]
    assert report.cycles == []
    sessions = {e.checkpoint_id: e.session for e in report.by_status("imported")}
    # The branch leading to the newest checkpoint (b4) keeps the session's name.
    assert [sessions[by_name[n]] for n in ("aaaaaaa1", "aaaaaaa2", "bbbbbbb3", "bbbbbbb4")] == [
        "agent-1"
    ] * 4
    assert sessions[by_name["aaaaaaa3"]] == sessions[by_name["aaaaaaa4"]] == fork
    assert sessions[by_name["ccccccc1"]] == "agent-2"
    assert sessions[by_name["eeeeeee1"]] == "imported"
    assert sessions[by_name["fffffff1"]] == "sess-1/x"
    assert store.load("agent-1")["checkpoint_id"] == by_name["bbbbbbb4"]
    assert [e.checkpoint_id for e in store.log(session=fork)] == [
        by_name["aaaaaaa4"], by_name["aaaaaaa3"], by_name["aaaaaaa2"], by_name["aaaaaaa1"],
    ]  # fmt: skip
    assert store.load(by_name["eeeeeee1"])["session_id"] is None  # as the file had it
    assert store.load(by_name["fffffff1"])["session_id"] == "sess 1/../x"
    assert store.get_commit(by_name["ccccccc2"]).notes == "a top-level notes field"


def test_original_ids_resolve_as_refs_with_their_links(store: Store, tmp_path: Path) -> None:
    files = write_files(tmp_path / "in", branching_chain())
    by_name = {cid.rsplit("-", 1)[1]: cid for cid in files}
    import_checkpoints(store, [tmp_path / "in"])
    b4 = by_name["bbbbbbb4"]
    info = store.get_commit(b4)
    assert info.checkpoint_id == b4
    assert info.created_at == files[b4]["created_at"]
    assert info.parent_checkpoint_id == by_name["bbbbbbb3"]
    assert store.get_commit(f"{b4}~2").checkpoint_id == by_name["aaaaaaa2"]
    assert store.get_commit(f"{b4}~3").checkpoint_id == by_name["aaaaaaa1"]
    assert store.get_commit(by_name["ccccccc1"]).parent_checkpoint_id == by_name["aaaaaaa1"]
    # A parent the files and the store lack: the link reads as the file had it.
    assert store.get_commit(by_name["ddddddd1"]).parent_checkpoint_id == (
        "ckpt-20260101-000000-0000dead"
    )
    assert store.get_commit(by_name["ddddddd1"]).parents == ()
    changes = store.diff(by_name["aaaaaaa1"], b4)
    assert {c.section for c in changes} >= {"variables", "tasks"}
    assert store.load(b4)["content_hash"] == files[b4]["content_hash"]
    assert [e.checkpoint_id for e in store.log(b4, limit=2)] == [b4, by_name["bbbbbbb3"]]
    with pytest.raises(RevisionNotFound):
        store.get_commit("ckpt-20260123-120009-bbbbbbb5")


def test_an_id_not_in_the_derived_form_resolves_too(store: Store, tmp_path: Path) -> None:
    odd = make("x", 1, None, checkpoint_id="ckpt-20260123-120000-abc")
    write_files(tmp_path / "in", [odd])
    import_checkpoints(store, [tmp_path / "in"])
    assert store.load("ckpt-20260123-120000-abc")["variables"]["label"] == "x"
    assert store.get_commit("ckpt-20260123-120000-abc~0").checkpoint_id == odd["checkpoint_id"]


def test_a_checkpoint_committed_on_an_imported_one_names_it_as_parent(
    store: Store, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "in", branching_chain()[:2])
    import_checkpoints(store, [tmp_path / "in"])
    info = store.commit(variables={"after": 1}, session="agent-1")
    assert info.parent_checkpoint_id == list(files)[1]
    assert info.checkpoint_id != list(files)[1]
    loaded = store.load()
    assert loaded["variables"]["after"] == 1
    assert loaded["parent_checkpoint_id"] == list(files)[1]
    assert loaded["content_hash"] == info.tree  # a checkpoint made here: the tree id


# --- idempotence and conflicts ----------------------------------------------------------------


def test_importing_again_changes_nothing(store: Store, tmp_path: Path) -> None:
    files = write_files(tmp_path / "in", branching_chain())
    import_checkpoints(store, [tmp_path / "in"])
    objects = set(store.backend.iter_ids())
    refs = store.backend.list_refs()
    again = import_checkpoints(store, [tmp_path / "in"])
    assert ids(again, "imported") == []
    assert sorted(ids(again, "skipped")) == sorted(files)
    assert {e.reason for e in again.by_status("skipped")} == {"already in the store"}
    assert set(store.backend.iter_ids()) == objects
    assert store.backend.list_refs() == refs


def test_a_longer_chain_imported_later_continues_its_sessions(store: Store, tmp_path: Path) -> None:
    chain = [make("00000001", 1, None)]
    for i in range(2, 7):
        chain.append(make(f"0000000{i}", i, chain[-1]["checkpoint_id"]))
    write_files(tmp_path / "first", chain[:3])
    import_checkpoints(store, [tmp_path / "first"])
    write_files(tmp_path / "all", chain)
    report = import_checkpoints(store, [tmp_path / "all"])
    assert len(ids(report, "skipped")) == 3
    assert len(ids(report, "imported")) == 3
    assert report.forks == []
    assert [e.checkpoint_id for e in store.log(session="agent-1")] == [
        c["checkpoint_id"] for c in reversed(chain)
    ]


def test_the_same_id_with_other_content_is_rejected(store: Store, tmp_path: Path) -> None:
    first = make("aaaaaaa1", 1, None)
    write_files(tmp_path / "one", [first])
    import_checkpoints(store, [tmp_path / "one"])
    changed = {**first, "variables": {"step": 99}}
    write_files(tmp_path / "two", [changed])
    report = import_checkpoints(store, [tmp_path / "two"])
    [entry] = report.by_status("rejected")
    assert entry.reason == "the store holds a different checkpoint with this id"
    assert store.load(first["checkpoint_id"])["variables"] == first["variables"]
    # Two files with one id: the same content is one checkpoint; other content is refused.
    (tmp_path / "dup").mkdir()
    (tmp_path / "dup" / "ckpt-a.json").write_text(json.dumps(make("aaaaaaa9", 9, None)))
    (tmp_path / "dup" / "ckpt-b.json").write_text(json.dumps(make("aaaaaaa9", 9, None)))
    (tmp_path / "dup" / "ckpt-c.json").write_text(json.dumps(make("aaaaaaa9", 9, None, label=1)))
    report = import_checkpoints(store, [tmp_path / "dup"])
    assert [(Path(e.path).name, e.status) for e in report.entries] == [
        ("ckpt-b.json", "skipped"), ("ckpt-c.json", "rejected"), ("ckpt-a.json", "imported"),
    ]  # fmt: skip


# --- bad files, cycles ------------------------------------------------------------------------


def test_corrupt_and_truncated_files_are_rejected_while_the_others_are_imported(
    store: Store, tmp_path: Path
) -> None:
    good = write_files(tmp_path / "in", branching_chain()[:3])
    whole = json.dumps(make("deadbeef", 30, None))
    bad = {
        "ckpt-truncated.json": whole[: len(whole) // 2],
        "ckpt-empty.json": "",
        "ckpt-list.json": "[1, 2]",
        "ckpt-noid.json": json.dumps({"created_at": stamp(1)}),
        "ckpt-badid.json": json.dumps({**make("x", 1, None), "checkpoint_id": "../etc/passwd"}),
        "ckpt-badtime.json": json.dumps({**make("y", 1, None), "created_at": "yesterday"}),
        "ckpt-badtasks.json": json.dumps({**make("z", 1, None), "tasks": "none"}),
        "ckpt-nan.json": whole.replace('"ratio": 0.5', '"ratio": NaN'),
        "ckpt-dupkey.json": '{"checkpoint_id": "ckpt-1", "checkpoint_id": "ckpt-2"}',
        "ckpt-bigint.json": json.dumps({**make("w", 1, None), "variables": {"n": 2**70}}),
    }
    for name, text in bad.items():
        (tmp_path / "in" / name).write_text(text)
    (tmp_path / "in" / "ckpt-latin1.json").write_bytes(b'{"x": "\xe9"}')
    (tmp_path / "in" / "notes.txt").write_text("not a checkpoint file: not read")
    report = import_checkpoints(store, [tmp_path / "in"])
    assert sorted(ids(report, "imported")) == sorted(good)
    reasons = {Path(e.path).name: e.reason for e in report.by_status("rejected")}
    assert set(reasons) == {*bad, "ckpt-latin1.json"}
    assert "not valid JSON, or is truncated" in reasons["ckpt-truncated.json"]
    assert "not valid JSON, or is truncated" in reasons["ckpt-empty.json"]
    assert "a JSON list, not an object" in reasons["ckpt-list.json"]
    assert "no usable checkpoint_id" in reasons["ckpt-noid.json"]
    assert "no usable checkpoint_id" in reasons["ckpt-badid.json"]
    assert "'yesterday' is not an ISO 8601 time" in reasons["ckpt-badtime.json"]
    assert "$.tasks: must be a list" in reasons["ckpt-badtasks.json"]
    assert "NaN is not valid JSON" in reasons["ckpt-nan.json"]
    assert "duplicate key 'checkpoint_id'" in reasons["ckpt-dupkey.json"]
    assert "outside the 64-bit range" in reasons["ckpt-bigint.json"]
    assert "is not UTF-8" in reasons["ckpt-latin1.json"]
    assert all(reason.startswith("the file ") for reason in reasons.values())


def test_a_cycle_is_cut_before_its_oldest_member_and_reported(store: Store, tmp_path: Path) -> None:
    x_id, y_id, z_id = (f"ckpt-20260123-12000{i}-0000000{i}" for i in (1, 2, 3))
    x = make("00000001", 1, y_id)  # x → y → x; z hangs off y
    y = make("00000002", 2, x_id)
    z = make("00000003", 3, y_id)
    selfish = make("00000004", 4, "ckpt-20260123-120004-00000004", "agent-9")
    originals = write_files(tmp_path / "in", [x, y, z, selfish])
    report = import_checkpoints(store, [tmp_path / "in"])
    assert sorted(ids(report, "imported")) == sorted(originals)
    assert sorted(report.cycles) == [[x_id, y_id], [selfish["checkpoint_id"]]]
    cut = {e.checkpoint_id: e.reason for e in report.by_status("imported")}
    assert "closes a cycle" in cut[x_id]
    assert store.get_commit(x_id).parents == ()
    assert store.get_commit(x_id).parent_checkpoint_id == y_id  # as the file had it
    assert store.get_commit(z_id).parent_checkpoint_id == y_id
    export_checkpoints(store, directory=tmp_path / "out", all_sessions=True)
    assert exported_files(tmp_path / "out") == {f"{c}.json": d for c, d in originals.items()}


def test_a_missing_path_is_an_error_before_anything_is_imported(
    store: Store, tmp_path: Path
) -> None:
    write_files(tmp_path / "in", branching_chain()[:1])
    with pytest.raises(InvalidOption, match="neither a file nor a directory"):
        import_checkpoints(store, [tmp_path / "in", tmp_path / "nope"])
    assert store.sessions() == {}


def test_single_files_can_be_named(store: Store, tmp_path: Path) -> None:
    files = write_files(tmp_path / "in", branching_chain()[:2])
    paths = sorted((tmp_path / "in").glob("*.json"))
    report = import_checkpoints(store, [paths[1], paths[0], paths[1]])
    assert ids(report, "imported") == list(files)


# --- export -----------------------------------------------------------------------------------


def test_native_checkpoints_export_and_import_elsewhere_unchanged(tmp_path: Path) -> None:
    with Store.init(tmp_path / "a") as source:
        source.commit(make("11111111", 1, None), session="s")
        source.commit(variables={"step": 2}, session="s")
        source.fork("t", "s~1")
        source.commit(variables={"other": True}, session="t")
        report = export_checkpoints(source, ["s"], directory=tmp_path / "one")
        assert [cid for cid, _ in report.written] == [source.get_commit("s").checkpoint_id]
        export_checkpoints(source, directory=tmp_path / "all", sessions=["s", "t"])
        native = exported_files(tmp_path / "all")
        assert len(native) == 3  # s~1 is shared by both sessions: written once
        assert native[f"{source.get_commit('t').checkpoint_id}.json"] == source.load("t")
    with Store.init(tmp_path / "b") as target:
        imported = import_checkpoints(target, [tmp_path / "all"])
        assert len(ids(imported, "imported")) == 3
        assert imported.forks == []  # s and t came with their own session ids
        export_checkpoints(target, directory=tmp_path / "again", all_sessions=True)
        assert exported_files(tmp_path / "again") == native


def test_export_needs_a_selection_and_a_directory(store: Store, tmp_path: Path) -> None:
    store.commit(variables={"a": 1})
    with pytest.raises(InvalidOption, match="REF"):
        export_checkpoints(store, directory=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidOption, match="not a directory"):
        export_checkpoints(store, ["HEAD"], directory=tmp_path / "file")
    with pytest.raises(RevisionNotFound):
        export_checkpoints(store, ["nope"], directory=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the commit field --------------------------------------------------------------------------


def test_the_original_field_round_trips_and_is_checked() -> None:
    commit = Commit(b"\x01" * 32, (), stamp(1), "s", original={"checkpoint_id": "ckpt-x"})
    assert Commit.from_value(decode(commit.to_bytes())) == commit
    plain = Commit(b"\x01" * 32, (), stamp(1), "s")
    assert b"original" not in plain.to_bytes()  # absent: other commits' ids are unchanged
    value = decode(commit.to_bytes())
    value["original"] = {"content_hash": "x"}
    with pytest.raises(MalformedData, match="original"):
        Commit.from_value(value)


# --- property: any forest of chains round-trips -----------------------------------------------


@st.composite
def forests(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Checkpoint files whose parent links make chains, forks, cycles and dangling ends."""
    count = draw(st.integers(1, 10))
    minutes = draw(st.lists(st.integers(0, 3000), min_size=count, max_size=count))
    made = [make(f"{i:08x}", minute, None) for i, minute in enumerate(minutes)]
    ids = [data["checkpoint_id"] for data in made]
    for data in made:
        data["parent_checkpoint_id"] = draw(
            st.none() | st.sampled_from([*ids, "ckpt-19990101-000000-00000000"])
        )
        data["session_id"] = draw(st.sampled_from(["a", "b", None]))
        for field in draw(
            st.sets(st.sampled_from(["content_hash", "estimated_tokens", "session_id"]))
        ):
            del data[field]  # older files may lack store-owned fields: they stay absent
    return made


@given(forests())
def test_any_graph_of_checkpoint_files_round_trips(checkpoints: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store.memory() as store:
        originals = write_files(Path(tmp) / "in", checkpoints)
        report = import_checkpoints(store, [Path(tmp) / "in"])
        assert ids(report, "rejected") == []
        export_checkpoints(store, directory=Path(tmp) / "out", all_sessions=True)
        assert exported_files(Path(tmp) / "out") == {
            f"{cid}.json": data for cid, data in originals.items()
        }
        again = import_checkpoints(store, [Path(tmp) / "in"])
        assert len(ids(again, "skipped")) == len(checkpoints)
