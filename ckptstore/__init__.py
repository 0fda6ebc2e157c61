"""ckptstore: a content-addressed, git-like snapshot store for AI-agent session checkpoints."""

from ckptstore.commits import CommitInfo
from ckptstore.errors import (
    AmbiguousRevision,
    CkptError,
    CorruptObject,
    EmptySession,
    IntegrityError,
    InvalidCheckpoint,
    InvalidInput,
    InvalidRefName,
    InvalidRevision,
    InvalidSetting,
    InvalidValue,
    MalformedData,
    NotFound,
    ObjectNotFound,
    RefConflict,
    RevisionNotFound,
    StoreBusy,
    StoreDamaged,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotWritable,
    UnsupportedFormat,
)
from ckptstore.objects import ObjectId
from ckptstore.store import Checkpoint, Store

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRevision",
    "Checkpoint",
    "CkptError",
    "CommitInfo",
    "CorruptObject",
    "EmptySession",
    "IntegrityError",
    "InvalidCheckpoint",
    "InvalidInput",
    "InvalidRefName",
    "InvalidRevision",
    "InvalidSetting",
    "InvalidValue",
    "MalformedData",
    "NotFound",
    "ObjectId",
    "ObjectNotFound",
    "RefConflict",
    "RevisionNotFound",
    "Store",
    "StoreBusy",
    "StoreDamaged",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "StoreNotWritable",
    "UnsupportedFormat",
    "__version__",
]
