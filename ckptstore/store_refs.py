"""The Store facade's sessions and tags: fork, switch, list, tag (``Store`` mixes it in)."""

from __future__ import annotations

from typing import NamedTuple

from ckptstore.backends.base import RefUpdate
from ckptstore.commits import CommitInfo, iter_history
from ckptstore.errors import RefConflict, RefExists, RevisionNotFound
from ckptstore.refs import SESSION_PREFIX, TAG_PREFIX, check_name
from ckptstore.revisions import resolve_revision
from ckptstore.store_parts import StoreParts

__all__ = ["RefMethods", "SessionInfo"]


class RefMethods(StoreParts):
    """Sessions and tags are refs; the rest of the facade is :class:`ckptstore.Store`."""

    def fork(self, name: str, ref: str = "HEAD", *, switch: bool = False) -> CommitInfo:
        """Start session ``name`` at checkpoint ``ref`` (no copying: a new ref).

        Raises:
            RefExists: if the session already exists.
        """
        return self._create_ref(SESSION_PREFIX, name, ref, switch=switch)

    def switch(self, name: str) -> None:
        """Make session ``name`` the current one (HEAD).

        Raises:
            RevisionNotFound: if no such session has checkpoints.
        """
        if self.refs.session_head(check_name(name)) is None:
            raise RevisionNotFound(name, candidates=list(self.refs.sessions()))
        self.refs.set_current_session(name)

    def session_list(self) -> list[SessionInfo]:
        """Every session: head checkpoint, length and time; read from refs and heads only."""
        current = self.current_session
        with self.backend.reading():
            return [
                SessionInfo(name, next(iter_history(self.objects, oid)), name == current)
                for name, oid in self.refs.sessions().items()
            ]

    def tag(self, name: str, ref: str = "HEAD", *, force: bool = False) -> CommitInfo:
        """Name checkpoint ``ref`` with tag ``name`` (usable wherever a REF is).

        Raises:
            RefExists: if the tag exists and ``force`` is false.
        """
        return self._create_ref(TAG_PREFIX, name, ref, force=force)

    def delete_tag(self, name: str) -> None:
        """Remove tag ``name``.

        Raises:
            RevisionNotFound: if there is no such tag.
        """
        old = self.backend.get_ref(TAG_PREFIX + check_name(name))
        if old is None:
            raise RevisionNotFound(f"{TAG_PREFIX}{name}", candidates=list(self.refs.tags()))
        update = RefUpdate(TAG_PREFIX + name, old, None, "tag: delete")
        if not self.backend.write([], [update]).ok:
            raise RefConflict(TAG_PREFIX + name, old.hex(), None, 1)

    def tags(self) -> dict[str, CommitInfo]:
        """Every tag and the checkpoint it names."""
        with self.backend.reading():
            return {
                name: next(iter_history(self.objects, oid))
                for name, oid in self.refs.tags().items()
            }

    def _create_ref(
        self, prefix: str, name: str, ref: str, *, switch: bool = False, force: bool = False
    ) -> CommitInfo:
        full = prefix + check_name(name)
        with self.backend.reading():
            target = resolve_revision(self.objects, self.refs, ref)
            info = next(iter_history(self.objects, target))
            old = self.backend.get_ref(full)
        if old is not None and not force:
            raise RefExists(full, old.hex())
        verb = "fork" if prefix == SESSION_PREFIX else "tag"
        if not self.backend.write([], [RefUpdate(full, old, target, f"{verb}: from {ref}")]).ok:
            raise RefConflict(full, old.hex() if old else None, None, 1)
        if switch:
            self.refs.set_current_session(name)
        return info


class SessionInfo(NamedTuple):
    """A session as ``ckpt session list`` shows it: ``head.generation`` is its length."""

    name: str
    head: CommitInfo
    current: bool
