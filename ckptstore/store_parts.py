"""What the Store facade's mixins use of the facade, declared once for the type checker.

The mixins are ``store_capture``, ``store_history``, ``store_refs`` and
``store_maintenance``; :class:`ckptstore.Store` sets these parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptstore.backends.base import Backend
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import Refs

__all__ = ["StoreParts"]


class StoreParts:
    """The facade's parts the mixins build on."""

    backend: Backend
    objects: ObjectStore
    refs: Refs

    if TYPE_CHECKING:

        @property
        def current_session(self) -> str:
            """The current session (:attr:`ckptstore.Store.current_session`)."""
