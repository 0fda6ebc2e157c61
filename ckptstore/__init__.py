"""ckptstore: a content-addressed, git-like snapshot store for AI-agent session checkpoints."""

from ckptstore.collectors import Captured, CollectContext, Collector, CollectorError
from ckptstore.commits import CommitInfo
from ckptstore.diff import Change
from ckptstore.edits import Edits, Output
from ckptstore.errors import (
    AmbiguousRevision,
    CkptError,
    CollectorFailed,
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
    UnknownTask,
    UnknownTaskType,
    UnsupportedFormat,
)
from ckptstore.fsck import FsckReport, Problem
from ckptstore.gc import GCStats
from ckptstore.history import KeyChange
from ckptstore.interchange import ExportReport, ImportReport, export_checkpoints, import_checkpoints
from ckptstore.manager import CheckpointManager, CheckpointView
from ckptstore.objects import ObjectId
from ckptstore.probes import DependencySpec, ProbeResult
from ckptstore.prune import PruneReport
from ckptstore.restore import Environment, render_env, restore_env
from ckptstore.retention import RetentionPolicy
from ckptstore.secrets import SecretPolicy, redact
from ckptstore.session import AutoCheckpoint
from ckptstore.stats import StoreStats
from ckptstore.store import Checkpoint, SessionInfo, Store
from ckptstore.summary import ContextSummarizer, Summary, TaskProfile

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRevision",
    "AutoCheckpoint",
    "Captured",
    "Change",
    "Checkpoint",
    "CheckpointManager",
    "CheckpointView",
    "CkptError",
    "CollectContext",
    "Collector",
    "CollectorError",
    "CollectorFailed",
    "CommitInfo",
    "ContextSummarizer",
    "CorruptObject",
    "DependencySpec",
    "Edits",
    "EmptySession",
    "Environment",
    "ExportReport",
    "FsckReport",
    "GCAborted",
    "GCStats",
    "ImportReport",
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
    "Output",
    "PathNotFound",
    "ProbeResult",
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
    "UnknownTask",
    "UnknownTaskType",
    "UnsupportedFormat",
    "__version__",
    "export_checkpoints",
    "import_checkpoints",
    "redact",
    "render_env",
    "restore_env",
]
