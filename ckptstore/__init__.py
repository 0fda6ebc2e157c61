"""ckptstore: a content-addressed, git-like snapshot store for AI-agent session checkpoints."""

from ckptstore.commits import CommitInfo
from ckptstore.diff import Change
from ckptstore.errors import (
    AmbiguousRevision,
    CkptError,
    CorruptObject,
    EmptySession,
    GCAborted,
    IntegrityError,
    InvalidCheckpoint,
    InvalidConfig,
    InvalidDuration,
    InvalidInput,
    InvalidOption,
    InvalidPath,
    InvalidRefName,
    InvalidRevision,
    InvalidSetting,
    InvalidValue,
    MalformedData,
    NotFound,
    ObjectNotFound,
    PathNotFound,
    RefConflict,
    RefExists,
    RevisionNotFound,
    StoreBusy,
    StoreDamaged,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotWritable,
    UnknownTaskType,
    UnsupportedFormat,
)
from ckptstore.fsck import FsckReport, Problem
from ckptstore.gc import GCStats
from ckptstore.history import KeyChange
from ckptstore.objects import ObjectId
from ckptstore.prune import PruneReport
from ckptstore.restore import Environment, render_env, restore_env
from ckptstore.retention import RetentionPolicy
from ckptstore.secrets import SecretPolicy, redact
from ckptstore.stats import StoreStats
from ckptstore.store import Checkpoint, SessionInfo, Store
from ckptstore.summary import ContextSummarizer, Summary, TaskProfile

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRevision",
    "Change",
    "Checkpoint",
    "CkptError",
    "CommitInfo",
    "ContextSummarizer",
    "CorruptObject",
    "EmptySession",
    "Environment",
    "FsckReport",
    "GCAborted",
    "GCStats",
    "IntegrityError",
    "InvalidCheckpoint",
    "InvalidConfig",
    "InvalidDuration",
    "InvalidInput",
    "InvalidOption",
    "InvalidPath",
    "InvalidRefName",
    "InvalidRevision",
    "InvalidSetting",
    "InvalidValue",
    "KeyChange",
    "MalformedData",
    "NotFound",
    "ObjectId",
    "ObjectNotFound",
    "PathNotFound",
    "Problem",
    "PruneReport",
    "RefConflict",
    "RefExists",
    "RetentionPolicy",
    "RevisionNotFound",
    "SecretPolicy",
    "SessionInfo",
    "Store",
    "StoreBusy",
    "StoreDamaged",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "StoreNotWritable",
    "StoreStats",
    "Summary",
    "TaskProfile",
    "UnknownTaskType",
    "UnsupportedFormat",
    "__version__",
    "redact",
    "render_env",
    "restore_env",
]
