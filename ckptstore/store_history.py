"""The Store facade's history: log, diff, per-value history and paths (``Store`` mixes it in)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ckptstore.commits import CommitInfo, read_commit
from ckptstore.errors import EmptySession
from ckptstore.refs import check_name
from ckptstore.revisions import resolve_revision
from ckptstore.snapshot import seed_order
from ckptstore.store_parts import StoreParts
from ckptstore.validation import STORE_OWNED

if TYPE_CHECKING:
    from ckptstore.diff import Change
    from ckptstore.history import KeyChange

__all__ = ["HistoryMethods"]


class HistoryMethods(StoreParts):
    """Reading a store's history; the rest of the facade is :class:`ckptstore.Store`."""

    if TYPE_CHECKING:

        def load(self, ref: str = "HEAD") -> dict[str, Any]:
            """A checkpoint (:meth:`ckptstore.Store.load`)."""

    def log(
        self,
        ref: str | None = None,
        *,
        session: str | None = None,
        limit: int | None = 20,
        all_sessions: bool = False,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        grep: str | None = None,
    ) -> list[CommitInfo]:
        """Return checkpoints newest first, from ``ref`` (default: the session's newest).

        ``all_sessions`` merges every session by time (a checkpoint shared by forked
        sessions is listed once). ``since``/``until`` take datetimes, ISO 8601 text or
        durations ago (``2h``, ``3d``); ``grep`` keeps notes containing the text.

        Raises:
            EmptySession: if the session has no checkpoints.
            InvalidDuration: if a time is malformed.
        """
        from ckptstore.history import filtered_log

        low, high = (_moment(since), _moment(until))
        with self.backend.reading():
            if all_sessions:
                starts = [*self.refs.sessions().values(), *self.refs.tags().values()]
            else:
                starts = [self._start(ref, session)]
            return filtered_log(self.objects, starts, since=low, until=high, grep=grep, limit=limit)

    def _start(self, ref: str | None, session: str | None) -> bytes:
        if ref is None:
            name = check_name(session) if session is not None else self.current_session
            head = self.refs.session_head(name)
            if head is None:
                raise EmptySession(name, others=list(self.refs.sessions()))
            return head
        return resolve_revision(self.objects, self.refs, ref)

    # --- history: diff, per-value history, paths ---------------------------------------

    def diff(self, old: str = "HEAD~1", new: str = "HEAD") -> list[Change]:
        """What changed from checkpoint ``old`` to ``new`` (any two, related or not).

        Reads only the parts of the two trees that differ.
        """
        from ckptstore.treediff import diff_trees

        with self.backend.reading():
            trees = [
                read_commit(self.objects, resolve_revision(self.objects, self.refs, ref)).tree
                for ref in (old, new)
            ]
            return diff_trees(self.objects, trees[0], trees[1])

    def history(
        self,
        key: str,
        ref: str | None = None,
        *,
        session: str | None = None,
        limit: int | None = 20,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        grep: str | None = None,
    ) -> list[KeyChange]:
        """The checkpoints where the value at path ``key`` changed, newest first.

        ``key`` is a path such as ``variables.plan``, ``tasks.42`` or ``phase``;
        ``since``/``until``/``grep`` filter as in :meth:`log`.
        """
        from ckptstore.history import commit_filter, key_history
        from ckptstore.paths import parse_path

        path = parse_path(key)
        keep = commit_filter(since=_moment(since), until=_moment(until), grep=grep)
        with self.backend.reading():
            start = self._start(ref, session)
            return key_history(self.objects, start, path, limit=limit, keep=keep)

    def show(self, ref: str, path: str) -> Any:
        """The value at ``path`` (``variables.plan``, ``tasks.42.status``) in checkpoint ``ref``."""
        from ckptstore.paths import lookup, parse_path

        segments = parse_path(path)
        if segments[0] in STORE_OWNED and len(segments) == 1:
            return self.load(ref)[segments[0]]
        with self.backend.reading():
            commit = read_commit(self.objects, resolve_revision(self.objects, self.refs, ref))
            value = lookup(self.objects, commit.tree, segments, text=f"{ref}:{path}")
        return seed_order(segments, value)


def _moment(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    from ckptstore.history import parse_moment

    return parse_moment(value)
