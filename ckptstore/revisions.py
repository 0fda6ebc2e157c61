"""Revisions: turning a REF argument into a commit id.

Accepted forms, each optionally followed by ``~N`` (N first-parents back; ``~`` alone
and ``^`` mean one)::

    HEAD                         the newest checkpoint of the current session
    ckpt-20260123-120000-ab12cd34  a checkpoint id
    <session> | sessions/<name>  the newest checkpoint of a session
    <tag> | tags/<name>          a tagged checkpoint
    <hex>                        a full or unambiguous short (4+ hex) commit id

A full commit id names that commit, even where a session or tag has the same name;
any other name is looked up as a ref before it is tried as a short id, as git does. So
a full id, the form programs pass, is resolved without reading a ref, and without
reading the store at all when its commit is in the object cache.

An imported checkpoint keeps its original id, which need not have the derived form
(``ckpt import``). Such ids are found through an index kept in the store's settings:
``original-id:<checkpoint id>`` → commit id, one primary-key lookup. The index is only
a pointer: the commit it names must exist and record that id, so an entry left behind
by a failed import or a gc names nothing rather than the wrong checkpoint.
"""

from __future__ import annotations

import re
from typing import Final

from ckptstore.commits import CHECKPOINT_ID, ORIGINAL_ID_SETTING, checkpoint_id_of, read_commit
from ckptstore.errors import (
    AmbiguousRevision,
    EmptySession,
    InvalidRevision,
    NotFound,
    RevisionNotFound,
)
from ckptstore.objects import ID_BYTES, Kind, raw_id
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import HEAD, SESSION_PREFIX, TAG_PREFIX, Refs

__all__ = ["find_original", "parse_revision", "resolve_revision"]

_SUFFIX: Final = re.compile(r"(~\d*|\^)$")
_HEX: Final = re.compile(r"[0-9a-f]{4,64}")
MAX_ANCESTRY: Final = 10_000_000


def parse_revision(text: str) -> tuple[str, int]:
    """Split a REF into its base and how many first-parents to walk back.

    Raises:
        InvalidRevision: if the text is empty or the count is not a number.
    """
    if not text or text != text.strip():
        raise InvalidRevision(text, "it is empty or has surrounding whitespace")
    base, back = text, 0
    while True:
        match = _SUFFIX.search(base)
        if match is None:
            break
        token = match.group(1)
        step = 1 if token in ("^", "~") else int(token[1:])
        back += step
        base = base[: match.start()]
    if not base:
        raise InvalidRevision(text, "it has no name before '~'")
    if "~" in base or "^" in base:
        raise InvalidRevision(text, "'~' must be followed by a number of generations")
    if back > MAX_ANCESTRY:
        raise InvalidRevision(text, f"{back} is too many generations")
    return base, back


def find_original(objects: ObjectStore, checkpoint: str) -> bytes | None:
    """The commit that recorded original checkpoint id ``checkpoint``, if the store has it."""
    found = objects.backend.get_setting(ORIGINAL_ID_SETTING + checkpoint)
    if found is None:
        return None
    try:
        oid = raw_id(found)
        commit = read_commit(objects, oid)
    except (NotFound, ValueError):
        return None  # a stale entry: the import failed or gc removed the commit
    if commit.original is None or commit.original.get("checkpoint_id") != checkpoint:
        return None
    return oid


def _by_checkpoint_id(objects: ObjectStore, text: str, match: re.Match[str]) -> bytes:
    hits = [oid for oid, kind in objects.find(match.group(3)) if kind == Kind.COMMIT]
    exact = [oid for oid in hits if checkpoint_id_of(oid, read_commit(objects, oid)) == text]
    original = find_original(objects, text)
    if original is not None and original not in exact:
        exact.append(original)
    if len(exact) > 1:
        raise AmbiguousRevision(text, [oid.hex() for oid in exact])
    if not exact:
        detail = "a commit has that id prefix but another timestamp" if hits else ""
        raise RevisionNotFound(text, detail=detail)
    return exact[0]


def _by_name(refs: Refs, base: str) -> bytes | None:
    if base.startswith((SESSION_PREFIX, TAG_PREFIX)):
        return refs.backend.get_ref(base)
    found = {
        prefix + base: oid
        for prefix in (SESSION_PREFIX, TAG_PREFIX)
        if (oid := refs.backend.get_ref(prefix + base)) is not None
    }
    if len(found) > 1:
        raise AmbiguousRevision(base, sorted(found), hint="write the one you mean in full")
    return next(iter(found.values()), None)


def _by_full_id(objects: ObjectStore, base: str) -> bytes | None:
    if len(base) != 2 * ID_BYTES or not _HEX.fullmatch(base):
        return None
    oid = bytes.fromhex(base)
    if objects.cached_kind(oid) == Kind.COMMIT:
        return oid
    return oid if (oid, Kind.COMMIT) in objects.find(base, limit=1) else None


def _by_hex(objects: ObjectStore, base: str) -> bytes | None:
    hits = objects.find(base)
    commits = [oid for oid, kind in hits if kind == Kind.COMMIT]
    if len(commits) > 1:
        raise AmbiguousRevision(base, [oid.hex() for oid in commits])
    if commits:
        return commits[0]
    if hits:
        kind = hits[0][1]
        raise RevisionNotFound(base, detail=f"it names a {kind.label}, not a checkpoint")
    return None


def _candidates(refs: Refs) -> list[str]:
    return [*refs.sessions(), *(TAG_PREFIX + t for t in refs.tags())]


def resolve_revision(objects: ObjectStore, refs: Refs, text: str) -> bytes:
    """Return the commit id a REF names.

    Raises:
        InvalidRevision: malformed REF.
        RevisionNotFound: nothing matches (the message lists known sessions and tags).
        AmbiguousRevision: several things match.
        EmptySession: HEAD names a session with no checkpoints yet.
    """
    base, back = parse_revision(text)
    oid: bytes | None
    if base == HEAD:
        session = refs.current_session()
        oid = refs.session_head(session)
        if oid is None:
            raise EmptySession(session, others=list(refs.sessions()))
    elif (match := CHECKPOINT_ID.fullmatch(base)) is not None:
        oid = _by_checkpoint_id(objects, base, match)
    elif (oid := _by_full_id(objects, base)) is None:
        oid = _by_name(refs, base)
        if oid is None and _HEX.fullmatch(base):
            oid = _by_hex(objects, base)
        if oid is None:
            oid = find_original(objects, base)
        if oid is None:
            if base == refs.current_session():
                raise EmptySession(base, others=list(refs.sessions()))
            raise RevisionNotFound(text, candidates=_candidates(refs))
    # ~N counts the checkpoints `ckpt log` lists: across a prune cut it continues at the
    # nearest kept ancestor, as the log does.
    marks = objects.backend.prune_marks() if back else {}
    for step in range(back):
        commit = read_commit(objects, oid)
        mark = marks.get(oid)
        parent = mark.next if mark is not None else (commit.parents[0] if commit.parents else None)
        if parent is None:
            why = "the rest was pruned" if mark is not None else "that is the first"
            raise RevisionNotFound(
                text,
                detail=f"the history has only {step} checkpoint(s) before {base}; {why}",
            )
        oid = parent
    return oid
