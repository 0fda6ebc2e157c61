"""LangGraph threads as sessions: session names, and the index of a session's checkpoints.

Each (thread, checkpoint namespace) is one session::

    langgraph/<thread>              the root namespace ("")
    langgraph/<thread>/<namespace>  a subgraph's namespace ("child:<task id>")

Thread ids and namespaces are percent-encoded: every character other than an ASCII
letter, digit, ``_`` or ``-`` becomes ``%XX`` (its UTF-8 bytes), and an empty thread id
is ``%``. Ref names then never break a rule of :func:`ckptstore.refs.check_name`, the
encoding is reversible, and ``/`` only ever separates the parts.

A session is a linear log of *events*, one commit each, newest at the head: a
checkpoint stored (``put``), writes added to a checkpoint (``put_writes``), or writes
that arrived before their checkpoint (LangGraph saves writes in the background, so
they may). Every event's tree is the whole current state of one LangGraph checkpoint,
its pending writes included, so the newest event of a checkpoint id is that
checkpoint. The first words of an event's notes name it: ``langgraph <kind> <id>:``.
That format, the kinds and the percent-encoding are defined below the store, in
:mod:`ckptstore.event_commits` (``ckpt stats`` reads them too), and re-exported here.
:class:`ThreadIndex` keeps, per session, the newest event of each checkpoint id; it
reads only the events added since it last looked.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from ckptstore.backends.base import PruneMark
from ckptstore.commits import iter_history
from ckptstore.event_commits import (
    EARLY,
    KINDS,
    PREFIX,
    PUT,
    WRITES,
    event_notes,
    parse_notes,
    parse_session,
    quote,
)
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import SESSION_PREFIX, Refs, check_name

__all__ = [
    "EARLY",
    "KINDS",
    "MAX_ATTEMPTS",
    "PREFIX",
    "PUT",
    "WRITES",
    "Event",
    "ThreadIndex",
    "backoff",
    "event_notes",
    "parse_notes",
    "parse_session",
    "session_name",
    "thread_sessions",
]

MAX_ATTEMPTS: Final = 200
"""Times a write is rebuilt on a session head that another writer moved meanwhile."""


def session_name(thread_id: str, checkpoint_ns: str = "") -> str:
    """The session of a LangGraph thread's namespace.

    Raises:
        InvalidRefName: if the name gets too long (a thread id of ~190 characters).
    """
    name = PREFIX + quote(thread_id)
    if checkpoint_ns:
        name += "/" + quote(checkpoint_ns)
    return check_name(name)


def thread_sessions(refs: Refs, thread_id: str | None = None) -> dict[str, bytes]:
    """Every LangGraph session (of one thread, if given): name → head commit id."""
    prefix = PREFIX if thread_id is None else PREFIX + quote(thread_id)
    found = {}
    for name, oid in refs.backend.list_refs(SESSION_PREFIX + prefix).items():
        session = name.removeprefix(SESSION_PREFIX)
        parsed = parse_session(session)
        if parsed is not None and (thread_id is None or parsed[0] == thread_id):
            found[session] = oid
    return found


def backoff(attempt: int) -> None:
    """Wait a little, at random, before rebuilding a write that lost a race."""
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))


class Event(NamedTuple):
    """One event commit: what it did to which checkpoint, and its tree."""

    commit: bytes
    tree: bytes
    kind: str
    checkpoint_id: str


@dataclass(slots=True)
class _Session:
    head: bytes | None = None
    events: dict[str, Event] = field(default_factory=dict)
    """The newest event of each checkpoint id."""


class ThreadIndex:
    """The newest event of each checkpoint id, per session, kept current by reading heads.

    Not thread-safe: the saver holds its lock around every call.
    """

    def __init__(self, objects: ObjectStore, refs: Refs) -> None:
        self.objects = objects
        self.refs = refs
        self._sessions: dict[str, _Session] = {}
        self._parsed: dict[bytes, Event | None] = {}
        self._marks: dict[bytes, PruneMark] | None = None

    def head(self, session: str) -> bytes | None:
        """The session's head commit as last read or written."""
        return self._session(session).head

    def events(self, session: str) -> dict[str, Event]:
        """Refresh ``session`` and return its newest event per checkpoint id."""
        return self.refresh(session).events

    def _session(self, name: str) -> _Session:
        return self._sessions.setdefault(name, _Session())

    def refresh(self, name: str) -> _Session:
        """Read the events added to session ``name`` since it was last read.

        A ``ckpt prune`` cuts histories without moving a ref, but it leaves prune marks:
        when they change, every session is read again.
        """
        marks = self.objects.backend.prune_marks()
        if marks != self._marks:
            self._sessions.clear()
            self._marks = marks
        state = self._session(name)
        head = self.refs.session_head(name)
        if head == state.head:
            return state
        new: list[Event] = []
        reached = head is None
        with self.objects.backend.reading():
            for info in iter_history(self.objects, head) if head is not None else ():
                oid = bytes.fromhex(info.id)
                if oid == state.head:
                    reached = True
                    break
                if oid not in self._parsed:
                    parsed = parse_notes(info.notes)
                    self._parsed[oid] = (
                        Event(oid, bytes.fromhex(info.tree), parsed[0], parsed[1])
                        if parsed is not None
                        else None
                    )
                event = self._parsed[oid]
                if event is not None:
                    new.append(event)
        if not reached or state.head is None or head is None:
            # The history was rewritten (a prune) or deleted: start over.
            state = self._sessions[name] = _Session()
        state.head = head
        for event in reversed(new):
            state.events[event.checkpoint_id] = event
        return state

    def record(self, name: str, old: bytes | None, event: Event) -> None:
        """Note an event this process wrote on top of ``old`` (the head it read)."""
        state = self._session(name)
        self._parsed[event.commit] = event
        if state.head != old:
            self._sessions.pop(name, None)  # it moved under us too: re-read on next use
            return
        state.head = event.commit
        state.events[event.checkpoint_id] = event

    def forget(self, name: str) -> None:
        """Drop what is known of a session (it was deleted or rewritten)."""
        self._sessions.pop(name, None)
