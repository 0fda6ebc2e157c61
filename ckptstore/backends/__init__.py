"""Storage backends: the protocol, the in-memory twin and the SQLite default."""

from ckptstore.backends.base import Backend, ReflogEntry, RefUpdate, StoredObject, WriteResult
from ckptstore.backends.memory import MemoryBackend
from ckptstore.backends.sqlite import SQLiteBackend

__all__ = [
    "Backend",
    "MemoryBackend",
    "RefUpdate",
    "ReflogEntry",
    "SQLiteBackend",
    "StoredObject",
    "WriteResult",
]
