"""CkptSaver, the LangGraph checkpointer: LangGraph's own conformance suite, a real graph
(reducer, interrupt, resume, fork), dedup counted in objects, the ``ckpt`` commands on
a LangGraph store, and the value encoding.

Needs the ``langgraph`` extra (``pip install -e '.[langgraph,test]'``); without it the
whole module is skipped, so the core suite runs without LangGraph.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import itertools
import json
import operator
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("langgraph.graph")
conformance = pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402
from langgraph.checkpoint.base.id import uuid6  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

from ckptstore import Store  # noqa: E402
from ckptstore.errors import InvalidRefName  # noqa: E402
from ckptstore.integrations.langgraph import CkptSaver  # noqa: E402
from ckptstore.integrations.lg_threads import (  # noqa: E402
    EARLY,
    WRITES,
    event_notes,
    parse_notes,
    parse_session,
    session_name,
)
from ckptstore.integrations.lg_values import ValueCodec  # noqa: E402
from ckptstore.refs import check_name  # noqa: E402
from ckptstore.retention import RetentionPolicy  # noqa: E402
from ckptstore.trees import fetch_closure, read_items, resolve  # noqa: E402
from storetools import all_ids, later  # noqa: E402
from test_cli import ckpt, ok  # noqa: E402

# --- LangGraph's conformance suite ---------------------------------------------------------

EXTENDED = ("copy_thread", "delete_for_runs", "prune")


def run_conformance(make: Any) -> Any:
    @conformance.checkpointer_test(name="CkptSaver")
    async def factory() -> AsyncIterator[CkptSaver]:
        with make() as saver:
            yield saver

    return asyncio.run(conformance.validate(factory))


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_conformance_suite_passes_every_capability(backend: str, tmp_path: Path) -> None:
    stores = iter(range(100))

    def make() -> CkptSaver:
        if backend == "memory":
            return CkptSaver(Store.memory())
        return CkptSaver(tmp_path / f"store-{next(stores)}")  # a fresh store per suite

    report = run_conformance(make)
    report.print_report()  # the capability summary, shown with -s
    assert report.passed_all_base()
    assert report.conformance_level() == "FULL"
    for capability in EXTENDED:  # claimed: detected, and every test of it passed
        result = report.results[capability]
        assert result.detected, capability
        assert result.passed, (capability, result.failures)
    assert sum(r.tests_passed for r in report.results.values()) == 58 + 7 + 8 + 8


# --- a real StateGraph ----------------------------------------------------------------------


class Draft(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]  # a reducer channel
    approved: bool


def research(state: Draft) -> dict[str, Any]:
    return {"notes": [f"fact about {state['topic']}"]}


def write(state: Draft) -> dict[str, Any]:
    return {"notes": ["draft: " + "lorem ipsum " * 200]}


def review(state: Draft) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "notes": len(state["notes"])})
    return {"approved": answer}


def publish(state: Draft) -> dict[str, Any]:
    return {"notes": ["published" if state["approved"] else "shelved"]}


def draft_graph() -> StateGraph:
    builder = StateGraph(Draft)
    for name, node in (("research", research), ("write", write), ("review", review)):
        builder.add_node(name, node)
    builder.add_node("publish", publish)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[CkptSaver]:
    with CkptSaver(tmp_path / "store") as opened:
        yield opened


def test_a_graph_runs_interrupts_resumes_and_forks(saver: CkptSaver) -> None:
    graph = draft_graph().compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "article"}}

    paused = graph.invoke({"topic": "owls", "notes": [], "approved": False}, config)
    assert paused["__interrupt__"][0].value == {"question": "approve?", "notes": 2}
    assert graph.get_state(config).next == ("review",)

    done = graph.invoke(Command(resume=True), config)
    assert done["approved"] is True
    assert done["notes"][0] == "fact about owls"
    assert done["notes"][-1] == "published"
    assert len(done["notes"]) == 3  # the reducer appended, once per node

    history = list(graph.get_state_history(config))
    assert [h.metadata["step"] for h in history] == [4, 3, 2, 1, 0, -1]  # newest first
    ids = [h.config["configurable"]["checkpoint_id"] for h in history]
    assert ids == sorted(ids, reverse=True)
    for child, parent in itertools.pairwise(history):
        assert (
            child.parent_config["configurable"]["checkpoint_id"]
            == (parent.config["configurable"]["checkpoint_id"])
        )

    # Fork: back to the checkpoint before the review, change the topic, run again.
    before_review = next(h for h in history if h.next == ("review",))
    forked = graph.update_state(before_review.config, {"topic": "cats"})
    assert graph.invoke(None, forked)["__interrupt__"]
    rejected = graph.invoke(Command(resume=False), config)
    assert rejected["topic"] == "cats"
    assert rejected["notes"][-1] == "shelved"
    assert rejected["notes"][:2] == done["notes"][:2]

    # The first branch is still there, by id, exactly as it was.
    first_end = graph.get_state(history[0].config)
    assert first_end.values == done
    fork_point = saver.get_tuple(forked)
    assert fork_point is not None
    assert fork_point.parent_config is not None
    assert (
        fork_point.parent_config["configurable"]["checkpoint_id"]
        == (before_review.config["configurable"]["checkpoint_id"])
    )
    assert graph.get_state(config).values == rejected  # the newest checkpoint is the fork's
    assert len(list(graph.get_state_history(config))) > len(history)


def test_a_graph_resumes_from_a_second_saver_on_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "store"
    config: Any = {"configurable": {"thread_id": "t"}}
    with CkptSaver(path) as first:
        draft_graph().compile(checkpointer=first).invoke(
            {"topic": "owls", "notes": [], "approved": False}, config
        )
    with CkptSaver(path) as second:  # another process would see the same
        done = draft_graph().compile(checkpointer=second).invoke(Command(resume=True), config)
    assert done["notes"][-1] == "published"


def test_the_async_methods_drive_a_graph(saver: CkptSaver) -> None:
    async def run() -> None:
        graph = draft_graph().compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "a"}}
        await graph.ainvoke({"topic": "owls", "notes": [], "approved": False}, config)
        done = await graph.ainvoke(Command(resume=True), config)
        assert done["notes"][-1] == "published"
        assert len([t async for t in saver.alist(config)]) == 6

    asyncio.run(run())


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def ask(state: Log) -> dict[str, Any]:
    return {"log": [f"answer {interrupt('ok?')}"]}


def nested_graph() -> StateGraph:
    inner = StateGraph(Log)
    inner.add_node("think", lambda state: {"log": ["thought"]})
    inner.add_node("ask", ask)
    inner.add_edge(START, "think")
    inner.add_edge("think", "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(Log)
    outer.add_node("start", lambda state: {"log": ["start"]})
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "start")
    outer.add_edge("start", "child")
    outer.add_edge("child", END)
    return outer


def drive(checkpointer: Any) -> list[Any]:
    """Run the nested graph through an interrupt; what a user sees along the way."""
    graph = nested_graph().compile(checkpointer=checkpointer)
    config: Any = {"configurable": {"thread_id": "nested"}}
    seen: list[Any] = [graph.invoke({"log": []}, config)["log"]]
    state = graph.get_state(config, subgraphs=True)
    seen.append((state.next, state.tasks[0].state.values, state.tasks[0].state.next))
    seen.append(graph.invoke(Command(resume="yes"), config))
    seen.append(
        [
            (h.metadata["step"], h.metadata["source"], h.next)
            for h in graph.get_state_history(config)
        ]
    )
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in checkpointer.list(config)}
    seen.append(sorted(ns.split(":")[0] for ns in namespaces))
    return seen


def test_a_subgraph_behaves_as_with_langgraphs_own_saver(saver: CkptSaver) -> None:
    assert drive(saver) == drive(InMemorySaver())
    sessions = sorted(saver.store.sessions())
    assert sessions[0] == "langgraph/nested"
    assert sessions[1].startswith("langgraph/nested/child%3A")  # the subgraph's namespace


try:  # beta in langgraph 1.2
    from langgraph.channels.delta import DeltaChannel
except ImportError:  # pragma: no cover - an older langgraph
    DeltaChannel = None


class Journal(TypedDict):
    entries: Annotated[list[str], DeltaChannel(operator.add, snapshot_frequency=3)]
    n: int


def journal(checkpointer: Any) -> Any:
    """Eight steps of a DeltaChannel (rebuilt from ancestors' writes), and the history."""
    builder = StateGraph(Journal)
    builder.add_node("step", lambda state: {"entries": [f"e{state['n']}"], "n": state["n"] + 1})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda state: "step" if state["n"] < 8 else END)
    graph = builder.compile(checkpointer=checkpointer)
    config: Any = {"configurable": {"thread_id": "journal"}}
    done = graph.invoke({"entries": [], "n": 0}, config)
    return done, [h.values for h in graph.get_state_history(config)]


@pytest.mark.skipif(DeltaChannel is None, reason="DeltaChannel needs langgraph 1.2")
def test_a_delta_channel_rebuilds_as_with_langgraphs_own_saver(saver: CkptSaver) -> None:
    assert journal(saver) == journal(InMemorySaver())


# --- dedup, counted in objects --------------------------------------------------------------


def put(
    saver: CkptSaver,
    thread: str,
    values: dict[str, Any],
    parent: str | None = None,
    versions: dict[str, int] | None = None,
    new: dict[str, int] | None = None,
) -> str:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=1))
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = versions or dict.fromkeys(values, 1)
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if parent is not None:
        conf["checkpoint_id"] = parent
    stored = saver.put({"configurable": conf}, checkpoint, {"source": "loop", "step": 0},
                       new if new is not None else checkpoint["channel_versions"])  # fmt: skip
    return str(stored["configurable"]["checkpoint_id"])


def big(tag: str = "") -> list[dict[str, Any]]:
    return [{"id": i, "text": f"item {i} {tag}" + " words" * 20} for i in range(100)]


def pairs(flat: list[Any]) -> dict[str, Any]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def objects_of(store: Store, thread: str, checkpoint_id: str, channel: str) -> set[bytes]:
    """The ids of the objects that hold one channel value of one checkpoint (from its commit)."""
    events = store.log(session=session_name(thread), limit=None)
    info = next(e for e in events if e.notes.split(" ")[2] == f"{checkpoint_id}:")
    root = pairs(read_items(store.objects, bytes.fromhex(info.tree)))
    entry = pairs(read_items(store.objects, root["variables"]))[channel]
    return set(fetch_closure(store.objects, [entry])) if isinstance(entry, bytes) else set()


def test_an_unchanged_channel_value_is_stored_once(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        first = put(saver, "t", {"docs": big(), "step": 1}, versions={"docs": 1, "step": 1})
        before = all_ids(store)
        second = put(saver, "t", {"docs": big(), "step": 2}, parent=first,
                     versions={"docs": 1, "step": 2}, new={"step": 2})  # fmt: skip
        added = all_ids(store) - before
        docs = objects_of(store, "t", first, "docs")
        assert len(docs) > 2  # the value is a tree of its items (inline in a few leaves)
        assert objects_of(store, "t", second, "docs") == docs
        assert not added & docs
        assert len(added) <= 8  # commit, root, meta, variables, header blobs
        # A new version of an equal value is encoded again, and still stored once.
        third = put(saver, "t", {"docs": big(), "step": 3}, parent=second,
                    versions={"docs": 2, "step": 3})  # fmt: skip
        assert objects_of(store, "t", third, "docs") == docs


def test_a_value_shared_across_threads_is_stored_once(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        put(saver, "one", {"docs": big()})
        before = all_ids(store)
        put(saver, "two", {"docs": big()})
        added = all_ids(store) - before
        assert not added & objects_of(store, "one", latest(saver, "one"), "docs")
        assert len(added) <= 8


def test_one_changed_item_adds_a_few_objects(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        first = put(saver, "t", {"docs": big()})
        before = all_ids(store)
        changed = big()
        changed[40] = {**changed[40], "text": "rewritten"}
        put(saver, "t", {"docs": changed}, parent=first, versions={"docs": 2})
        assert len(all_ids(store) - before) <= 14  # one item, its leaf and the path up


def test_pending_writes_share_objects_with_channel_values(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        first = put(saver, "t", {"docs": big("v2")})
        docs = objects_of(store, "t", first, "docs")
        before = all_ids(store)
        config: Any = {
            "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": first}
        }
        saver.put_writes(config, [("docs", big("v2"))], "task-1")  # a node echoing the state
        added = all_ids(store) - before
        assert not added & docs
        assert len(added) <= 8
        tup = saver.get_tuple(config)
        assert tup is not None
        assert tup.pending_writes == [("task-1", "docs", big("v2"))]


def latest(saver: CkptSaver, thread: str) -> str:
    tup = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    assert tup is not None
    return str(tup.config["configurable"]["checkpoint_id"])


def test_copy_thread_writes_refs_only(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        parent = put(saver, "src", {"docs": big()})
        put(saver, "src", {"docs": big("x")}, parent=parent, versions={"docs": 2})
        before = all_ids(store)
        saver.copy_thread("src", "dst")
        assert all_ids(store) == before
        src = [t.checkpoint for t in saver.list({"configurable": {"thread_id": "src"}})]
        dst = [t.checkpoint for t in saver.list({"configurable": {"thread_id": "dst"}})]
        assert dst == src
        assert len(dst) == 2


def test_deleted_threads_are_freed_by_gc(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store, CkptSaver(store) as saver:
        put(saver, "keep", {"note": "short"})
        put(saver, "drop", {"docs": big("only here")})
        doomed = objects_of(store, "drop", latest(saver, "drop"), "docs")
        saver.delete_thread("drop")
        assert saver.get_tuple({"configurable": {"thread_id": "drop"}}) is None
        store.gc(grace=0, reflog_expiry=0, now=later())
        assert not all_ids(store) & doomed
        assert saver.get_tuple({"configurable": {"thread_id": "keep"}}) is not None
        assert store.fsck().ok
        # The saver remembered how it encoded that value: storing it again must not
        # point at the objects gc took (the write is rebuilt with them).
        put(saver, "again", {"docs": big("only here")})
        assert objects_of(store, "again", latest(saver, "again"), "docs") == doomed
        assert doomed <= all_ids(store)
        assert store.fsck().ok


def test_writes_that_arrive_before_their_checkpoint_are_kept(saver: CkptSaver) -> None:
    # LangGraph saves writes in the background: they may land before the checkpoint.
    checkpoint_id = str(uuid6(clock_seq=1))
    config: Any = {
        "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    }
    saver.put_writes(config, [("ch", "early")], "task-1")
    assert saver.get_tuple(config) is None
    assert list(saver.list({"configurable": {"thread_id": "t"}})) == []
    checkpoint = empty_checkpoint()
    checkpoint["id"] = checkpoint_id
    saver.put({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, checkpoint, {}, {})
    tup = saver.get_tuple(config)
    assert tup is not None
    assert tup.pending_writes == [("task-1", "ch", "early")]


def test_a_second_saver_sees_what_the_first_deleted_and_pruned(tmp_path: Path) -> None:
    with CkptSaver(tmp_path / "s") as first, CkptSaver(tmp_path / "s") as second:
        for thread in ("gone", "pruned"):
            parent = put(first, thread, {"n": 1})
            put(first, thread, {"n": 2}, parent=parent, versions={"n": 2})
        config: Any = {"configurable": {"thread_id": "pruned"}}
        assert len(list(second.list(config))) == 2  # second has read both threads
        assert second.get_tuple({"configurable": {"thread_id": "gone"}}) is not None
        first.delete_thread("gone")
        first.prune(["pruned"])
        assert second.get_tuple({"configurable": {"thread_id": "gone"}}) is None
        assert [t.checkpoint["channel_values"] for t in second.list(config)] == [{"n": 2}]


def test_ckpt_prune_under_a_running_saver(saver: CkptSaver) -> None:
    ids = [put(saver, "t", {"n": 0})]
    for n in range(1, 5):
        ids.append(put(saver, "t", {"n": n}, parent=ids[-1], versions={"n": n + 1}))
    config: Any = {"configurable": {"thread_id": "t"}}
    assert len(list(saver.list(config))) == 5  # the saver has read the whole thread
    saver.store.prune(RetentionPolicy(last=2), grace=0, reflog_expiry=0, now=later())
    assert [t.checkpoint["id"] for t in saver.list(config)] == ids[:2:-1]
    assert saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_id": ids[0]}}) is None
    kept = saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_id": ids[3]}})
    assert kept is not None
    assert kept.parent_config is not None  # LangGraph's parent id is data: kept as it was
    assert kept.parent_config["configurable"]["checkpoint_id"] == ids[2]


WRITER = """
import sys
from ckptstore.integrations.langgraph import CkptSaver
path, checkpoint_id, task = sys.argv[1:]
config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
with CkptSaver(path) as saver:
    for i in range(15):
        saver.put_writes(config, [(f"ch{i}", i)], f"{task}-{i}")
"""


def test_writers_in_several_processes_on_one_thread_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with CkptSaver(path) as saver:
        first = put(saver, "t", {"x": 1})
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), first, task])
        for task in ("a", "b", "c")
    ]
    # This process writes too, through a saver of its own, while they run.
    with CkptSaver(path) as saver:
        config: Any = {
            "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": first}
        }
        for i in range(15):
            saver.put_writes(config, [(f"ch{i}", i)], f"d-{i}")
        assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
        tup = saver.get_tuple(config)
        assert tup is not None
        assert len(tup.pending_writes) == 60
        assert len(saver.store.log(session="langgraph/t", limit=None)) == 61  # one per call
        assert saver.store.fsck().ok


# --- the ckpt commands on a LangGraph store -----------------------------------------------


def test_ckpt_commands_work_on_a_langgraph_store(tmp_path: Path) -> None:
    path = tmp_path / "store"
    config: Any = {"configurable": {"thread_id": "article/1"}}
    with CkptSaver(path) as saver:
        graph = draft_graph().compile(checkpointer=saver)
        graph.invoke({"topic": "owls", "notes": [], "approved": False}, config)
        graph.invoke(Command(resume=True), config)
        newest = latest(saver, "article/1")
    session = session_name("article/1")
    assert session == "langgraph/article%2F1"
    store = str(path)

    log = json.loads(ok(ckpt("log", "--store", store, "--session", session, "--json")).stdout)
    # Writes are saved in the background, so they may come before or after a checkpoint.
    puts = [entry for entry in log if entry["notes"].startswith("langgraph checkpoint ")]
    assert puts[0]["notes"] == f"langgraph checkpoint {newest}: step 4 (loop)"
    assert len(puts) == 6
    assert any(entry["notes"].startswith("langgraph writes ") for entry in log)

    # The last two checkpoints: publish appended a note, and the parent moved on.
    diff = ok(ckpt("diff", "--store", store, puts[1]["id"], puts[0]["id"], "--json")).stdout
    changes = {(c["section"], c["key"]) for c in json.loads(diff)}
    assert changes >= {("variables", "notes"), ("meta", "parent"), ("meta", "checkpoint")}

    # The newest checkpoint's event, not the session's head: the writes of the task that
    # ran before it may be saved after it, and the head is then that writes event.
    shown = json.loads(ok(ckpt("load", "--store", store, puts[0]["id"], "--json")).stdout)
    assert shown["variables"]["notes"][-1] == "published"
    assert shown["checkpoint"]["id"] == newest

    fsck = ok(ckpt("fsck", "--store", store)).stdout
    assert fsck.rstrip().endswith("ok")
    stats = json.loads(ok(ckpt("stats", "--store", store, "--json")).stdout)
    assert stats["sessions"] == 1
    assert stats["checkpoints"] == len(puts)  # the writes events are counted apart
    assert stats["events"] == len(log) - len(puts)
    gc = json.loads(ok(ckpt("gc", "--store", store, "--json")).stdout)
    assert gc["objects_removed"] == 0  # everything a thread needs is reachable
    with CkptSaver(path) as saver:
        assert saver.get_tuple(config) is not None


def compact(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_ckpt_stats_counts_the_checkpoints_langgraph_lists(tmp_path: Path) -> None:
    path = tmp_path / "store"
    config: Any = {"configurable": {"thread_id": "a"}}
    with CkptSaver(path) as saver:
        graph = draft_graph().compile(checkpointer=saver)
        graph.invoke({"topic": "owls", "notes": [], "approved": False}, config)
        graph.invoke(Command(resume=True), config)
        # Writes saved before their checkpoint, which never came: nothing LangGraph lists.
        early = {"thread_id": "b", "checkpoint_ns": "", "checkpoint_id": str(uuid6(clock_seq=1))}
        saver.put_writes({"configurable": early}, [("notes", ["early"])], "task-1")
        # A copy shares a's checkpoints; a write makes its newest one a state of its own.
        saver.copy_thread("a", "c")
        newest = {"thread_id": "c", "checkpoint_ns": "", "checkpoint_id": latest(saver, "c")}
        saver.put_writes({"configurable": newest}, [("notes", ["extra"])], "task-2")
        listed = {
            (t.config["configurable"]["thread_id"], t.checkpoint["id"]) for t in saver.list(None)
        }
        store = saver.store
        everything: set[str] = set()
        found: dict[tuple[str, str], tuple[str, str]] = {}  # the newest event per checkpoint
        for session in store.sessions():
            parsed_session = parse_session(session)
            assert parsed_session is not None
            for info in store.log(session=session, limit=None):
                everything.add(info.id)
                parsed = parse_notes(info.notes)
                assert parsed is not None
                found.setdefault((parsed_session[0], parsed[1]), (parsed[0], info.id))
        states = {key: commit for key, (kind, commit) in found.items() if kind != EARLY}
        assert set(states) == listed
        distinct = set(states.values())
        assert len(distinct) == len(listed) // 2 + 1  # c: a's, but its newest with the write
        expected = {
            "checkpoints": len(distinct),
            "events": len(everything) - len(distinct),
            "logical_bytes": sum(compact(store.load(commit)) for commit in distinct),
        }
    stats = json.loads(ok(ckpt("stats", "--store", str(path), "--json")).stdout)
    assert {key: stats[key] for key in expected} == expected
    assert stats["events"] > 1  # every task's writes, the early ones and the copy's
    text = ok(ckpt("stats", "--store", str(path))).stdout
    assert f"checkpoints  {len(distinct)} (plus {stats['events']} LangGraph write events)" in text


# --- names and values ---------------------------------------------------------------------


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_event_notes_name_any_checkpoint_id(checkpoint_id: str) -> None:
    notes = event_notes(WRITES, checkpoint_id, "task t wrote a: b")
    assert parse_notes(notes) == (WRITES, checkpoint_id)
    assert parse_notes("langgraph: something else") is None


def test_a_checkpoint_id_with_spaces_and_colons_is_found(saver: CkptSaver) -> None:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = "step 3: review"
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    saver.put(config, checkpoint, {"step": 3}, {})
    found = saver.get_tuple(
        {"configurable": {**config["configurable"], "checkpoint_id": "step 3: review"}}
    )
    assert found is not None
    assert found.metadata == {"step": 3}


@given(st.text(), st.text())
def test_session_names_are_valid_and_reversible(thread: str, ns: str) -> None:
    try:
        name = session_name(thread, ns)
    except InvalidRefName as err:  # percent-encoded, long ids get too long for a ref name
        problem = err.problem
    else:
        assert check_name(name) == name
        assert parse_session(name) == (thread, ns)
        return
    assert "longer than" in problem


@dataclass(frozen=True)
class Point:
    x: int
    y: int


text = st.text(st.characters(exclude_categories=["Cs"]))  # no lone surrogates
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | text
)  # fmt: skip
other = (
    st.binary() | st.builds(Point, st.integers(-(2**63), 2**63 - 1), st.integers(0, 9))
    | st.sets(st.integers(-1000, 1000), max_size=3) | st.just(float("inf"))
)  # fmt: skip
values = st.recursive(
    json_scalars | other,
    lambda inner: (
        st.lists(inner, max_size=12)
        | st.tuples(inner, inner)
        | st.dictionaries(text | st.sampled_from(["$serde", "$order"]), inner, max_size=8)
        | st.dictionaries(st.integers(-1000, 1000), inner, max_size=3)
    ),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types and the same dict key order all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def round_trip(codec: ValueCodec, value: Any) -> Any:
    store = Store.memory()
    pending: dict[bytes, Any] = {}
    entry = codec.encode(pending, value)
    store.backend.write(store.objects.prepare(pending))
    form = (
        resolve(fetch_closure(store.objects, [entry]), entry) if isinstance(entry, bytes) else entry
    )
    return codec.decode(form)


@given(values)
def test_values_round_trip_exactly(value: Any) -> None:
    assert same(
        round_trip(ValueCodec(JsonPlusSerializer(), plain=True), value), serde_round_trip(value)
    )


def serde_round_trip(value: Any) -> Any:
    serde = JsonPlusSerializer()
    return serde.loads_typed(serde.dumps_typed(value))


class Recording:
    """Another serializer (like an encrypting one): LangGraph's, recorded and re-encoded."""

    def __init__(self) -> None:
        self.inner = JsonPlusSerializer()
        self.seen: list[Any] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.seen.append(obj)
        tag, data = self.inner.dumps_typed(obj)
        return tag + "+rec", base64.b85encode(data)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        tag, payload = data
        return self.inner.loads_typed((tag.removesuffix("+rec"), base64.b85decode(payload)))


def test_another_serializer_gets_every_value_whole(tmp_path: Path) -> None:
    serde = Recording()
    with CkptSaver(tmp_path / "s", serde=serde) as saver:
        docs = big()
        first = put(saver, "t", {"docs": docs, "n": 1})
        assert docs in serde.seen
        assert 1 in serde.seen
        tup = saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_id": first}})
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {"docs": docs, "n": 1}


def test_json_values_are_readable_in_the_store(tmp_path: Path) -> None:
    with CkptSaver(tmp_path / "s") as saver:
        put(saver, "t", {"plan": {"b": 1, "a": [1, 2]}, "point": Point(1, 2)})
    with Store.open(tmp_path / "s") as store:
        stored = store.load("langgraph/t")["variables"]
    assert stored["plan"] == {"$order": ["b", "a"], "a": [1, 2], "b": 1}
    assert set(stored["point"]) == {"$serde", "$data"}  # LangGraph's serializer's bytes


def test_an_allowlist_clone_decodes_with_its_own_serializer(tmp_path: Path) -> None:
    strict = JsonPlusSerializer(allowed_msgpack_modules=None)  # LANGGRAPH_STRICT_MSGPACK
    with CkptSaver(tmp_path / "s", serde=strict) as saver:
        put(saver, "t", {"point": Point(1, 2)})
        config: Any = {"configurable": {"thread_id": "t"}}
        blocked = saver.get_tuple(config)
        assert blocked is not None
        assert blocked.checkpoint["channel_values"]["point"] != Point(1, 2)
        allowed = saver.with_allowlist([("test_langgraph_saver", "Point")])
        assert allowed is not saver
        tup = allowed.get_tuple(config)  # the same store and index, its own serializer
        assert tup is not None
        assert tup.checkpoint["channel_values"]["point"] == Point(1, 2)
        allowed.close()  # leaves the shared store open
        assert saver.get_tuple(config) is not None


def test_the_benchmark_runs_both_savers_on_the_same_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "langgraph_loop.py"
    spec = importlib.util.spec_from_file_location("langgraph_loop", path)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "langgraph_loop", bench)  # LangGraph reads its hints
    spec.loader.exec_module(bench)
    out = tmp_path / "figures.json"
    argv = ["--steps", "4", "--threads", "2", "--fleet-steps", "3", "--json", str(out)]
    assert bench.main(argv) == 0
    figures = json.loads(out.read_text())
    for scenario, threads, steps in (("loop", 1, 4), ("fleet", 2, 3)):
        sqlite, ours = figures[scenario]
        assert (sqlite["saver"], ours["saver"]) == ("SqliteSaver", "CkptSaver")
        assert sqlite["checkpoints"] == ours["checkpoints"] == threads * (steps + 2)
        assert ours["ckptstore"]["objects"]["commit"] >= ours["checkpoints"]
        assert sqlite["ckptstore"] is None
