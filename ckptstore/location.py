"""Where a store lives: finding it the way git finds ``.git``, and where ``init`` puts it.

A store is a directory (``.ckpt`` by default) holding ``store.db``. Commands find it by
walking up from the current directory; an explicit path or ``CKPT_STORE`` overrides the
walk and may name either the store directory or a directory that contains ``.ckpt``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ckptstore.errors import StoreNotFound

__all__ = ["ENV_STORE", "STORE_DIR", "STORE_FILE", "find_store", "store_file"]

STORE_DIR: Final = ".ckpt"
STORE_FILE: Final = "store.db"
ENV_STORE: Final = "CKPT_STORE"


def store_file(directory: Path) -> Path:
    """The database file of the store in ``directory``."""
    return directory / STORE_FILE


def _explicit(path: Path) -> Path:
    if path.is_symlink() and not path.exists():
        raise StoreNotFound(str(path), reason="it is a dangling symbolic link")
    if store_file(path).is_file():
        return path
    if store_file(path / STORE_DIR).is_file():
        return path / STORE_DIR
    if not path.exists():
        raise StoreNotFound(str(path), reason="the directory does not exist")
    raise StoreNotFound(str(path), reason=f"no {STORE_FILE} there")


def find_store(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Return the directory of the store to use.

    ``path`` wins, then ``CKPT_STORE``, then the nearest ``.ckpt`` at or above ``cwd``.
    The search stops at a ``.ckpt`` that is a dangling symbolic link rather than pass
    it by for a store further up.

    Raises:
        StoreNotFound: if there is no store there, or the nearest ``.ckpt`` is a dangling
            symbolic link.
    """
    environ = os.environ if env is None else env
    if path is not None:
        return _explicit(Path(path))
    if environ.get(ENV_STORE):
        return _explicit(Path(environ[ENV_STORE]))
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        candidate = directory / STORE_DIR
        if store_file(candidate).is_file():
            return candidate
        if candidate.is_symlink() and not candidate.exists():
            # Its store is unreachable (an unmounted volume, a moved directory): going
            # on upwards would silently write to some other store.
            raise StoreNotFound(str(candidate), reason="it is a dangling symbolic link")
    raise StoreNotFound(str(start), searched_parents=True)
