"""The original skill's checkpoint files (one ``ckpt-*.json`` each), found, read and checked.

Part of :mod:`ckptstore.interchange`: the import's first step. Each file is checked on
its own — valid UTF-8 and JSON (no duplicate keys, no ``NaN``), an object with a usable
``checkpoint_id`` and an ISO 8601 ``created_at``, and every value as a commit would check
it — so a corrupt or truncated one is rejected with the reason while the others are
imported. A ``session_id`` that is not a valid session name is made into one (the
default session where it cannot be).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ckptstore.errors import InvalidCheckpoint, InvalidOption, InvalidRefName
from ckptstore.json_text import parse_json
from ckptstore.refs import check_name
from ckptstore.validation import validate_state

__all__ = [
    "FILE_GLOB",
    "SAFE_ID",
    "CheckpointFile",
    "Rejected",
    "file_paths",
    "read_file",
]

FILE_GLOB: Final = "ckpt-*.json"
SAFE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,159}")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(slots=True)
class CheckpointFile:
    """One file, read and checked.

    ``children``, ``newest`` and ``cut`` are the import's working state as it orders
    the files.
    """

    path: str
    data: dict[str, Any]
    state: dict[str, Any]
    cid: str
    moment: datetime
    parent: str | None
    session: str
    children: list[CheckpointFile] = field(default_factory=list)
    newest: datetime | None = None
    cut: bool = False

    @property
    def order(self) -> tuple[datetime, str]:
        """Oldest first; the checkpoint id breaks ties."""
        return self.moment, self.cid


def file_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files ``paths`` name, a directory's ``ckpt-*.json`` in name order; each once.

    Raises:
        InvalidOption: a path is neither a file nor a directory.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.glob(FILE_GLOB) if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidOption("path", str(raw), "is neither a file nor a directory")
    return list(dict.fromkeys(found))


class Rejected(Exception):
    """Why a file cannot be imported (the report's reason)."""


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _session_name(raw: Any, default: str) -> str:
    """A valid session name from a ``session_id`` (made valid where it is not)."""
    if not isinstance(raw, str) or not raw:
        return default
    parts = (_UNSAFE.sub("-", part).replace("..", ".").strip(".-") for part in raw.split("/"))
    for name in (raw, "/".join(p for p in parts if p)):
        try:
            return check_name(name)
        except InvalidRefName:
            continue
    return default


def read_file(path: Path, default: str) -> CheckpointFile:
    """Read and check one file.

    Raises:
        Rejected: saying why the file cannot be imported.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise Rejected(f"cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise Rejected(f"is not UTF-8 (bad byte at offset {err.start})") from None
    try:
        data = parse_json(text)
    except RecursionError:
        raise Rejected("is nested too deeply") from None
    except ValueError as err:
        raise Rejected(f"is not valid JSON, or is truncated ({err})") from None
    if not isinstance(data, dict):
        raise Rejected(f"is not a checkpoint (a JSON {type(data).__name__}, not an object)")
    cid, created = data.get("checkpoint_id"), data.get("created_at")
    if not isinstance(cid, str) or not SAFE_ID.fullmatch(cid):
        raise Rejected("has no usable checkpoint_id (letters, digits and . _ - only)")
    if not isinstance(created, str):
        raise Rejected("has no created_at timestamp")
    try:
        moment = _moment(created)
    except ValueError:
        raise Rejected(f"created_at {created!r} is not an ISO 8601 time") from None
    for name in ("parent_checkpoint_id", "session_id"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise Rejected(f"{name} must be a string or null")
    try:
        state = validate_state(data)  # checks every value, the store-owned ones too
    except InvalidCheckpoint as err:
        raise Rejected(f"{err.field}: {err.problem}") from None
    parent = data.get("parent_checkpoint_id")
    return CheckpointFile(
        str(path), data, state, cid, moment, parent, _session_name(data.get("session_id"), default)
    )
