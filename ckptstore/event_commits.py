"""Event commits: how a commit the LangGraph saver wrote is recognised from the commit alone.

The saver (``ckptstore.integrations``) stores each LangGraph thread namespace as a
session ``langgraph/<thread>[/<namespace>]`` whose commits are *events*, one per call:
a checkpoint stored (``put``), writes added to a stored checkpoint (``put_writes``), or
writes that arrived before their checkpoint. Every event's tree is the whole state of
one LangGraph checkpoint, its pending writes included, so the newest event of a
checkpoint id in a session's log *is* that checkpoint, and the older ones are states it
went through. The notes of an event name it: ``langgraph <kind> <checkpoint id>: ...``.

The format lives here, below the store, so that ``stats`` can tell a LangGraph
checkpoint from the other events without importing the integration (which sits above
the store); the integration's ``lg_threads`` builds its names and notes with it.
Thread ids, namespaces and checkpoint ids are percent-encoded: every character other
than an ASCII letter, digit, ``_`` or ``-`` becomes ``%XX`` (its UTF-8 bytes), and an
empty text is ``%``. Nothing here imports LangGraph.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EARLY",
    "KINDS",
    "PREFIX",
    "PUT",
    "WRITES",
    "event_notes",
    "parse_event",
    "parse_notes",
    "parse_session",
    "quote",
    "unquote",
]

PREFIX: Final = "langgraph/"
"""The session names the saver writes (under ``sessions/``)."""
PUT: Final = "checkpoint"
WRITES: Final = "writes"
EARLY: Final = "early-writes"
"""Writes stored before their checkpoint: not a checkpoint (LangGraph does not list it)."""
KINDS: Final = (PUT, WRITES, EARLY)
_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_EMPTY: Final = "%"


def quote(text: str) -> str:
    """``text`` percent-encoded (see the module docstring); reversed by :func:`unquote`."""
    if not text:
        return _EMPTY
    return "".join(ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)


def unquote(text: str) -> str | None:
    """The text :func:`quote` encoded as ``text``, or ``None`` if it is not such an encoding."""
    if text == _EMPTY:
        return ""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            try:
                out.append(int(text[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
        else:
            out.extend(text[i].encode())
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def parse_session(name: str) -> tuple[str, str] | None:
    """The ``(thread_id, checkpoint_ns)`` of a LangGraph session, or ``None``."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX) :].split("/")
    if len(parts) > 2:
        return None
    decoded = [unquote(part) for part in parts]
    thread = decoded[0]
    ns = decoded[1] if len(decoded) == 2 else ""
    if thread is None or ns is None or (len(parts) == 2 and not ns):
        return None
    return thread, ns


def event_notes(kind: str, checkpoint_id: str, detail: str) -> str:
    """The notes of an event commit: ``langgraph <kind> <checkpoint id>: <detail>``.

    The id is percent-encoded like a thread id (a LangGraph id, a UUID, is unchanged).
    """
    return f"langgraph {kind} {quote(checkpoint_id)}: {detail}"


def parse_notes(notes: str) -> tuple[str, str] | None:
    """``(kind, checkpoint id)`` of an event commit's notes, ``None`` for other commits."""
    parts = notes.split(" ", 3)
    if len(parts) < 3 or parts[0] != "langgraph" or parts[1] not in KINDS:
        return None
    if not parts[2].endswith(":"):
        return None
    checkpoint_id = unquote(parts[2][:-1])
    return (parts[1], checkpoint_id) if checkpoint_id is not None else None


def parse_event(session: str, notes: str) -> tuple[str, str] | None:
    """``(kind, checkpoint id)`` of a commit the saver wrote, from its session and notes.

    ``None`` for any other commit: both must match, so a checkpoint committed to another
    session with notes that happen to read like an event's is not taken for one.
    """
    return parse_notes(notes) if parse_session(session) is not None else None
