"""Import and export of the original skill's checkpoint files (one ``ckpt-*.json`` each).

**Import** (:func:`import_checkpoints`) reads files and directories of them, checks
each file on its own (a corrupt or truncated one is rejected with the reason while the
others are imported) and stores them in parent-before-child order: by the
``parent_checkpoint_id`` chain, and by ``created_at`` where the chain says nothing.
Each checkpoint keeps its original ``checkpoint_id`` (a REF from then on), its
``created_at``, its parent link and its store-owned values as the file had them
(``Commit.original``), so exporting it gives the file back. Finding, reading and
checking the files is :mod:`ckptstore.checkpoint_files`.

Sessions come from ``session_id`` (``default_session`` when it is null or missing). A
**fork** — two checkpoints naming the same parent — continues the session along the
branch that leads to the newest checkpoint; every other branch becomes the session
``<session>/<first checkpoint id of the branch>``. A parent missing from the files and
the store leaves its child the first of a line (its ``parent_checkpoint_id`` still
reads as the file had it). A **cycle** of parent links is cut before its oldest
member, which is imported as the first of a line; the report lists it. Importing the
same files again changes nothing: each is *skipped* as already present (and
*rejected* if the store holds different content under that checkpoint id).

**Export** (:func:`export_checkpoints`) writes checkpoints back in exactly the
original format, one ``<checkpoint id>.json`` per checkpoint, each file replaced
atomically. Secret variables are written as they are: the format has no redaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ckptstore.checkpoint_files import SAFE_ID, CheckpointFile, Rejected, file_paths, read_file
from ckptstore.errors import CkptError, InvalidOption, InvalidRefName, NotFound
from ckptstore.refs import check_name
from ckptstore.store import Checkpoint, Store
from ckptstore.validation import STORE_OWNED

__all__ = [
    "ExportReport",
    "ImportEntry",
    "ImportReport",
    "export_checkpoints",
    "import_checkpoints",
]


class ImportEntry(NamedTuple):
    """What happened to one file: ``imported``, ``skipped`` or ``rejected``, and why."""

    path: str
    checkpoint_id: str | None
    status: str
    reason: str = ""
    session: str | None = None
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path, "checkpoint_id": self.checkpoint_id, "status": self.status,
            "reason": self.reason, "session": self.session, "id": self.id,
        }  # fmt: skip


@dataclass(slots=True)
class ImportReport:
    """Every file's outcome, the sessions forks created and the cycles cut."""

    entries: list[ImportEntry] = field(default_factory=list)
    forks: list[str] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)

    def by_status(self, status: str) -> list[ImportEntry]:
        """The entries with ``status``."""
        return [e for e in self.entries if e.status == status]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ckpt import --json``)."""
        return {
            **{
                s: [e.to_dict() for e in self.by_status(s)]
                for s in ("imported", "skipped", "rejected")
            },
            "forks": list(self.forks),
            "cycles": [list(c) for c in self.cycles],
        }


class ExportReport(NamedTuple):
    """The files an export wrote: (checkpoint id, path)."""

    written: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ckpt export --json``)."""
        return {"written": [{"checkpoint_id": c, "path": p} for c, p in self.written]}


def exported(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint in the original format: as its file had it, if it was imported."""
    original = checkpoint.commit.original
    if original is None:
        return dict(checkpoint.data)
    keep = {"checkpoint_id", "created_at", *original}
    return {k: v for k, v in checkpoint.data.items() if k not in STORE_OWNED or k in keep}


def _stored(store: Store, cid: str) -> Checkpoint | None:
    try:
        return store.checkpoint(cid)
    except NotFound:
        return None


# --- ordering and sessions --------------------------------------------------------------


def _order(files: dict[str, CheckpointFile], report: ImportReport) -> list[CheckpointFile]:
    """Parents before children, oldest first among the rest; cycles cut and reported."""
    pending = {cid: f for cid, f in files.items() if f.parent in files and f.parent != cid}
    for f in files.values():
        if f.parent == f.cid:
            f.cut = True
            report.cycles.append([f.cid])
    ordered: list[CheckpointFile] = []
    ready = sorted((f for f in files.values() if f.cid not in pending), key=lambda f: f.order)
    for f in files.values():
        if f.cid in pending:
            files[f.parent].children.append(f)  # type: ignore[index]
    while True:
        while ready:
            node = ready.pop(0)
            ordered.append(node)
            for child in node.children:
                pending.pop(child.cid, None)
            ready = sorted([*ready, *node.children], key=lambda f: f.order)
        if not pending:
            return ordered
        # What is left hangs off a cycle: walk up from the oldest until a file repeats.
        seen: list[str] = []
        cid = min(pending.values(), key=lambda f: f.order).cid
        while cid not in seen:
            seen.append(cid)
            cid = files[cid].parent  # type: ignore[assignment]
        cycle = seen[seen.index(cid) :]
        head = min((files[c] for c in cycle), key=lambda f: f.order)
        files[head.parent].children.remove(head)  # type: ignore[index]
        head.cut = True
        report.cycles.append(sorted(cycle, key=lambda c: files[c].order))
        del pending[head.cid]
        ready = [head]


def _newest(ordered: list[CheckpointFile]) -> None:
    for f in reversed(ordered):
        f.newest = max([f.moment, *(c.newest or c.moment for c in f.children)])


def _lines(
    store: Store,
    files: dict[str, CheckpointFile],
    ordered: list[CheckpointFile],
    stored_parents: dict[str, str],
    report: ImportReport,
) -> dict[str, str]:
    """The session each file goes to (see the module docstring).

    ``heads`` simulates each session's newest checkpoint as the files are committed in
    ``ordered``: a stored commit's id, or ``new:<checkpoint id>``.
    """
    heads: dict[str, str] = {name: str(oid) for name, oid in store.sessions().items()}
    line: dict[str, str] = {}
    for f in ordered:
        parent = None if f.cut or f.parent is None else files.get(f.parent)
        if parent is not None and parent.session == f.session:
            same = [c for c in parent.children if c.session == f.session]
            heir = max(same, key=lambda c: (c.newest or c.moment, c.cid))
            name = line[parent.cid] if heir is f else _fork(f)
        else:
            token = (
                "new:" + parent.cid if parent is not None
                else None if f.cut else stored_parents.get(f.parent or "")
            )  # fmt: skip
            # Continue a line of this session that ends at the parent (an earlier
            # import's), else start the session itself if it is new, else fork.
            lines = [f.session, *sorted(n for n in heads if n.startswith(f.session + "/"))]
            ends_there = [n for n in lines if token is not None and heads.get(n) == token]
            if ends_there:
                name = ends_there[0]
            elif f.session not in heads:
                name = f.session
            else:
                name = _fork(f)
        if name not in heads and name != f.session:
            report.forks.append(name)
        line[f.cid] = name
        heads[name] = "new:" + f.cid
    return line


def _fork(f: CheckpointFile) -> str:
    try:
        return check_name(f"{f.session}/{f.cid}")
    except InvalidRefName:
        return check_name(f"imported/{f.cid}")


# --- import and export ------------------------------------------------------------------


def import_checkpoints(
    store: Store, paths: Iterable[str | os.PathLike[str]], *, default_session: str | None = None
) -> ImportReport:
    """Import original-format checkpoint files (and directories of ``ckpt-*.json``).

    Raises:
        InvalidOption: a path is neither a file nor a directory (nothing is imported).
        InvalidRefName: ``default_session`` is not a valid session name.
    """
    default = check_name(default_session or store.current_session)
    report = ImportReport()
    files: dict[str, CheckpointFile] = {}
    for path in file_paths(paths):
        try:
            f = read_file(path, default)
        except Rejected as err:
            report.entries.append(ImportEntry(str(path), None, "rejected", f"the file {err}"))
            continue
        first = files.get(f.cid)
        if first is not None:
            same = first.data == f.data
            why = "the same checkpoint as" if same else "another checkpoint with this id is in"
            status = "skipped" if same else "rejected"
            report.entries.append(ImportEntry(f.path, f.cid, status, f"{why} {first.path}"))
            continue
        held = _stored(store, f.cid)
        if held is not None:
            same = exported(held) == f.data
            report.entries.append(ImportEntry(
                f.path, f.cid, "skipped" if same else "rejected",
                "already in the store" if same
                else "the store holds a different checkpoint with this id",
                held.commit.session, held.commit.id,
            ))  # fmt: skip
            continue
        files[f.cid] = f
    stored_parents: dict[str, str] = {}
    for f in files.values():
        if f.parent is not None and f.parent not in files:
            held = _stored(store, f.parent)
            if held is not None:
                stored_parents[f.parent] = held.commit.id
    ordered = _order(files, report)
    _newest(ordered)
    lines = _lines(store, files, ordered, stored_parents, report)
    done: dict[str, str] = {}
    for f in ordered:
        parents: list[str] = []
        if f.parent is not None and not f.cut:
            if f.parent in files:
                if f.parent not in done:
                    report.entries.append(ImportEntry(
                        f.path, f.cid, "rejected", f"its parent {f.parent} was not imported"
                    ))  # fmt: skip
                    continue
                parents = [done[f.parent]]
            elif f.parent in stored_parents:
                parents = [stored_parents[f.parent]]
        original: dict[str, Any] = {
            k: f.data[k] for k in STORE_OWNED if k in f.data and k != "created_at"
        }
        notes = f.data.get("notes")
        try:
            info = store.commit(
                f.state, session=lines[f.cid], parents=parents, original=original,
                created_at=f.data["created_at"], notes=notes if isinstance(notes, str) else "",
                source=f.path,
            )  # fmt: skip
        except CkptError as err:
            report.entries.append(ImportEntry(f.path, f.cid, "rejected", str(err)))
            continue
        done[f.cid] = info.id
        reason = ""
        if f.cut:
            reason = f"its parent link to {f.parent} closes a cycle; starts a line"
        elif f.parent is not None and not parents:
            reason = f"its parent {f.parent} is not in the files or the store; starts a line"
        report.entries.append(ImportEntry(f.path, f.cid, "imported", reason, info.session, info.id))
    return report


def export_checkpoints(
    store: Store,
    refs: Sequence[str] = (),
    *,
    directory: str | os.PathLike[str],
    sessions: Sequence[str] = (),
    all_sessions: bool = False,
) -> ExportReport:
    """Write checkpoints as original-format files ``<directory>/<checkpoint id>.json``.

    ``refs`` are single checkpoints; ``sessions`` each session's whole history;
    ``all_sessions`` every checkpoint of every session and tag. Each checkpoint is
    written once.

    Raises:
        InvalidOption: nothing was selected, or ``directory`` is not a directory.
        NotFound: a REF or session names no checkpoint (nothing is written).
    """
    if not refs and not sessions and not all_sessions:
        raise InvalidOption("export", "", "name checkpoints (REF...), --session NAME or --all")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise InvalidOption("--dir", str(target), "exists and is not a directory")
    ids: list[str] = [str(store.resolve(ref)) for ref in refs]
    for name in sessions:
        ids += [info.id for info in store.log(session=name, limit=None)]
    if all_sessions:
        ids += [info.id for info in store.log(all_sessions=True, limit=None)]
    checkpoints = [store.checkpoint(oid) for oid in dict.fromkeys(ids)]
    target.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str]] = []
    for ckpt in checkpoints:
        cid = ckpt.commit.checkpoint_id
        if not SAFE_ID.fullmatch(cid):  # pragma: no cover - import checks every id
            raise InvalidOption("checkpoint id", cid, "cannot be a file name")
        path = target / f"{cid}.json"
        _write(path, json.dumps(exported(ckpt), indent=2, ensure_ascii=False) + "\n")
        written.append((cid, str(path)))
    return ExportReport(tuple(written))


def _write(path: Path, text: str) -> None:
    import tempfile  # here: only an export needs it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
