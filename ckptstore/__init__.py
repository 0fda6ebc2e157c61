"""ckptstore: a content-addressed, git-like snapshot store for AI-agent session checkpoints."""

from typing import TYPE_CHECKING, Any

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

# Everything else is imported when first used (PEP 562): `ckpt` starts in every agent
# hook, and a command should load only the modules it runs.
_LAZY: dict[str, str] = {
    "AutoCheckpoint": "ckptstore.session",
    "Captured": "ckptstore.collectors",
    "Change": "ckptstore.diff",
    "Checkpoint": "ckptstore.store",
    "CheckpointManager": "ckptstore.manager",
    "CheckpointView": "ckptstore.manager",
    "CollectContext": "ckptstore.collectors",
    "Collector": "ckptstore.collectors",
    "CollectorError": "ckptstore.collectors",
    "CommitInfo": "ckptstore.commits",
    "ContextSummarizer": "ckptstore.summary",
    "DependencySpec": "ckptstore.probes",
    "Edits": "ckptstore.edits",
    "Environment": "ckptstore.restore",
    "ExportReport": "ckptstore.interchange",
    "FsckReport": "ckptstore.fsck",
    "GCStats": "ckptstore.gc",
    "ImportReport": "ckptstore.interchange",
    "KeyChange": "ckptstore.history",
    "ObjectId": "ckptstore.objects",
    "Output": "ckptstore.edits",
    "ProbeResult": "ckptstore.probes",
    "Problem": "ckptstore.fsck",
    "PruneReport": "ckptstore.prune",
    "RetentionPolicy": "ckptstore.retention",
    "SecretPolicy": "ckptstore.secrets",
    "SessionInfo": "ckptstore.store",
    "Store": "ckptstore.store",
    "StoreStats": "ckptstore.stats",
    "Summary": "ckptstore.summary",
    "TaskProfile": "ckptstore.summary",
    "export_checkpoints": "ckptstore.interchange",
    "import_checkpoints": "ckptstore.interchange",
    "redact": "ckptstore.secrets",
    "render_env": "ckptstore.restore",
    "restore_env": "ckptstore.restore",
}

if TYPE_CHECKING:
    from ckptstore.collectors import Captured, CollectContext, Collector, CollectorError
    from ckptstore.commits import CommitInfo
    from ckptstore.diff import Change
    from ckptstore.edits import Edits, Output
    from ckptstore.fsck import FsckReport, Problem
    from ckptstore.gc import GCStats
    from ckptstore.history import KeyChange
    from ckptstore.interchange import (
        ExportReport,
        ImportReport,
        export_checkpoints,
        import_checkpoints,
    )
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptstore' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
