"""Refs: names that point at commits (sessions, tags) and HEAD, the current session.

A session is the ref ``sessions/<name>``; a tag is ``tags/<name>``. HEAD is a symbolic
ref kept as a store setting: it names the session that commands use when none is
given. Names follow git's ref-name rules, and also refuse the non-ASCII spaces, control
and format characters git lets through, so a name can always appear in a REF argument
(``name~3``), in paths and on one line of output without quoting.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from ckptstore.backends.base import Backend, RefUpdate
from ckptstore.errors import InvalidRefName

__all__ = [
    "DEFAULT_SESSION",
    "HEAD",
    "SESSION_PREFIX",
    "TAG_PREFIX",
    "Refs",
    "check_name",
]

SESSION_PREFIX: Final = "sessions/"
TAG_PREFIX: Final = "tags/"
HEAD: Final = "HEAD"
DEFAULT_SESSION: Final = "main"
MAX_NAME: Final = 200
_FORBIDDEN: Final = set(" ~^:?*[\\\x7f")
# Beyond git's ASCII rules: C1 controls, invisible format characters (bidi overrides,
# zero-width spaces), lone surrogates (bytes that were not UTF-8 on the command line:
# unstorable) and every Unicode space and line separator.
_UNPRINTABLE: Final = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def _printable(name: str) -> bool:
    return name.isascii() or not any(
        ch.isspace() or unicodedata.category(ch) in _UNPRINTABLE for ch in name
    )


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid session or tag name.

    Raises:
        InvalidRefName: saying which rule the name breaks.
    """
    problem = None
    if not name:
        problem = "it is empty"
    elif len(name) > MAX_NAME:
        problem = f"it is longer than {MAX_NAME} characters"
    elif name == HEAD or name == "@":
        problem = f"{name!r} is reserved"
    elif any(ord(ch) < 32 or ch in _FORBIDDEN for ch in name) or not _printable(name):
        problem = "it contains whitespace, a control character or one of ~ ^ : ? * [ \\"
    elif ".." in name or "//" in name or "@{" in name:
        problem = "it contains '..', '//' or '@{'"
    elif name.startswith(("/", ".", "-")) or name.endswith(("/", ".", ".lock")):
        problem = "it starts with '/', '.' or '-', or ends with '/', '.' or '.lock'"
    elif any(part.startswith(".") for part in name.split("/")):
        problem = "a path component starts with '.'"
    if problem:
        raise InvalidRefName(name, problem)
    return name


class Refs:
    """Session and tag refs, and HEAD, over a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def current_session(self) -> str:
        """The session HEAD names (``main`` in a new store)."""
        target = self.backend.get_setting(HEAD) or SESSION_PREFIX + DEFAULT_SESSION
        return target.removeprefix(SESSION_PREFIX)

    def set_current_session(self, name: str) -> None:
        """Point HEAD at session ``name`` (which need not have checkpoints yet)."""
        self.backend.set_setting(HEAD, SESSION_PREFIX + check_name(name))

    def session_head(self, name: str) -> bytes | None:
        """The newest commit of session ``name``, or ``None``."""
        return self.backend.get_ref(SESSION_PREFIX + name)

    def sessions(self) -> dict[str, bytes]:
        """Every session with at least one commit: name → head commit id."""
        return {
            name.removeprefix(SESSION_PREFIX): oid
            for name, oid in self.backend.list_refs(SESSION_PREFIX).items()
        }

    def tags(self) -> dict[str, bytes]:
        """Every tag: name → commit id."""
        return {
            name.removeprefix(TAG_PREFIX): oid
            for name, oid in self.backend.list_refs(TAG_PREFIX).items()
        }

    @staticmethod
    def session_update(name: str, old: bytes | None, new: bytes, message: str) -> RefUpdate:
        """A compare-and-swap move of session ``name`` from ``old`` to ``new``."""
        return RefUpdate(SESSION_PREFIX + name, old, new, message)
