"""Summary: a checkpoint told within a token budget, for a prompt preamble or a program.

A summary is built from *items* (a task, a dependency, a variable, an output, a change),
each with a priority: active and in-progress tasks, failing dependencies and failed
outputs first, completed tasks last. Items are taken in priority order while they fit
the budget; every item left out is counted in a marker line ("… 37 more pending
tasks"), never dropped silently. Long values are cut to a per-line allowance and say
how much was cut. The budget is a hard ceiling by the active token estimator
(:mod:`ckptstore.tokens`): the finished text is measured, and trimmed further if the
estimate of the whole exceeds it.

Levels (``LEVELS``) follow the original skill: *minimal* (phase, active task, agent,
dependency availability), *compact* (+ in-progress tasks, task counts, key variables),
*standard* (+ every task, dependency details, recent outputs), *full* (+ every variable,
completed phases, metadata). Task types (``--for``) narrow the variables and
dependencies to those a kind of sub-agent needs. This module is pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from ckptstore.diff import Change, diff_states
from ckptstore.errors import InvalidOption, UnknownTaskType
from ckptstore.secrets import SecretPolicy, redact
from ckptstore.summary.changes import changes_section
from ckptstore.summary.items import (
    STORE_OWNED,
    TASK_GROUPS,
    Builder,
    LevelSpec,
    Request,
    TaskProfile,
    fields,
    label,
)
from ckptstore.summary.render import FORMATS, Document, fit
from ckptstore.tokens import clip_text, estimate_text, estimator

__all__ = [
    "BUILTIN_TASK_TYPES",
    "FORMATS",
    "LEVELS",
    "MAX_BUDGET",
    "MIN_BUDGET",
    "ContextSummarizer",
    "LevelSpec",
    "Summary",
    "TaskProfile",
]

MIN_BUDGET: Final = 128
"""The smallest budget: room for the header lines and one line counting everything else."""
MAX_BUDGET: Final = 1_000_000
_ID_CAP: Final = 24  # tokens for a checkpoint id: about 15 by either estimator

LEVELS: Final[Mapping[str, LevelSpec]] = {
    "minimal": LevelSpec(500, (), False, False, "pinned", False, False, 40),
    "compact": LevelSpec(1000, TASK_GROUPS[:3], True, False, "key", False, False, 60),
    "standard": LevelSpec(2000, TASK_GROUPS, True, True, "key", True, False, 80),
    "full": LevelSpec(4000, TASK_GROUPS, True, True, "all", True, True, 160),
}


_INFRA = TaskProfile(
    "infrastructure",
    ("service", "infrastructure", "cache", "network", "queue", "storage", "compute"),
    ("*env*", "*region*", "*cluster*", "*terraform*", "tf_*", "*ansible*", "*infra*",
     "*deploy*", "*host*", "*target*", "*workspace*", "*stack*", "*inventory*"),
    "infrastructure dependencies and service status",
)  # fmt: skip
_DATABASE = TaskProfile(
    "database",
    ("database", "db", "cache", "ledger"),
    ("*db*", "*database*", "*dsn*", "*sql*", "*query*", "*ledger*", "*table*", "*schema*",
     "*connection*", "*endpoint*", "*url*"),
    "database connections and endpoints",
)  # fmt: skip
_GOVERNANCE = TaskProfile(
    "governance",
    ("governance", "policy", "ledger"),
    ("*tier*", "*agent*", "*promotion*", "*revocation*", "*governance*", "*policy*",
     "*approval*", "*violation*", "*role*", "*permission*"),
    "agent tier and governance variables",
)  # fmt: skip
BUILTIN_TASK_TYPES: Final[Mapping[str, TaskProfile]] = {
    "terraform": _INFRA, "ansible": _INFRA, "infrastructure": _INFRA,
    "database": _DATABASE, "query": _DATABASE, "ledger": _DATABASE,
    "promotion": _GOVERNANCE, "revocation": _GOVERNANCE, "governance": _GOVERNANCE,
}  # fmt: skip


class Summary(NamedTuple):
    """A finished summary: its text and how it was made."""

    text: str
    tokens: int  # the estimate of ``text``; never above ``budget``
    budget: int
    level: str
    format: str
    task_type: str | None
    omitted: Mapping[str, int]  # per group ("tasks.pending", "variables"...): items left out
    tokenizer: str

    def __str__(self) -> str:
        return self.text


# --- the API -----------------------------------------------------------------------


def _one_of(option: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidOption(option, value, f"must be one of {', '.join(allowed)}")
    return value


class ContextSummarizer:
    """Summaries of one checkpoint for prompts and sub-agents (the original skill's API).

    ``checkpoint`` is a checkpoint in the seed's JSON format (or anything with such a
    ``.data``). Secret variables (``secrets``; the default patterns unless given a
    store's policy) show as ``[redacted]``; pass ``secrets=None`` to reveal them.
    ``task_types`` adds to or replaces the built-in task types of :meth:`for_subagent`.
    """

    def __init__(
        self,
        checkpoint: Mapping[str, Any] | Any,
        *,
        secrets: SecretPolicy | None = SecretPolicy(),  # noqa: B008 - immutable
        task_types: Mapping[str, TaskProfile] | None = None,
    ) -> None:
        data = getattr(checkpoint, "data", checkpoint)
        if not isinstance(data, Mapping):
            raise InvalidOption("checkpoint", type(data).__name__, "must be a checkpoint (a dict)")
        self.raw: Mapping[str, Any] = data
        self.secrets = secrets
        self.data: Mapping[str, Any] = redact(data, secrets) if secrets is not None else data
        self.task_types = dict(BUILTIN_TASK_TYPES if task_types is None else task_types)

    def summary(
        self,
        level: str = "compact",
        *,
        max_tokens: int | None = None,
        task_type: str | None = None,
        keys: Sequence[str] = (),
        format: str = "markdown",
        since: Mapping[str, Any] | None = None,
        changes: Sequence[Change] | None = None,
        since_id: str | None = None,
    ) -> Summary:
        """A summary within ``max_tokens`` (default: the level's budget).

        ``since`` (an earlier checkpoint) or ``changes`` (from ``Store.diff``) makes it
        a summary of what changed, headed by where things stand now.

        Raises:
            InvalidOption: an unknown level or format, or a budget out of range.
            UnknownTaskType: ``task_type`` is neither built in nor configured.
        """
        spec = LEVELS[_one_of("level", level, list(LEVELS))]
        _one_of("format", format, list(FORMATS))
        budget: Any = spec.budget if max_tokens is None else max_tokens
        # Python callers may pass anything: check the type as well as the range.
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise InvalidOption("max_tokens", budget, "must be a whole number of tokens")
        if not MIN_BUDGET <= budget <= MAX_BUDGET:
            raise InvalidOption(
                "max_tokens", budget, f"must be a whole number from {MIN_BUDGET} to {MAX_BUDGET}"
            )
        profile = None
        if task_type is not None:
            profile = self.task_types.get(task_type) or self.task_types.get(task_type.lower())
            if profile is None:
                raise UnknownTaskType(task_type, sorted(self.task_types))
        req = Request(spec, level, profile, tuple(dict.fromkeys(keys)), budget)
        builder = Builder(self.data, req)
        if since is not None and changes is None:
            changes = diff_states(_user(since), _user(self.raw))
            since_id = since_id or _text_or_none(since.get("checkpoint_id"))
        if changes is not None:
            policy, current = self.secrets, self.raw.get("variables")
            found = changes_section(changes, req, since_id, policy, current)
            sections = [builder.dependencies(), found]
        else:
            sections = [
                builder.tasks(), builder.dependencies(), builder.variables(),
                builder.outputs(), builder.other_fields(),
            ]  # fmt: skip
        ident = _text_or_none(self.data.get("checkpoint_id"))
        title = "Checkpoint" + (f" {label(ident, _ID_CAP)}" if ident else "")
        if task_type is not None:
            title += f" — context for {label(task_type, 6)}"
        if changes is not None:
            title += f" — changes since {label(since_id or 'the earlier checkpoint', _ID_CAP)}"
        meta = {
            "checkpoint_id": clip_text(ident or "", _ID_CAP) or None,
            "level": level,
            "task_type": clip_text(task_type, 8) if task_type is not None else None,
            "budget": budget,
        }
        if changes is not None:
            meta["since"] = clip_text(since_id or "", _ID_CAP) or None
        head = [
            (name, _json_key(name), text, fields(value, spec.cap))
            for name, text, value in builder.head()
        ]
        doc = Document(title, head, [s for s in sections if s is not None], meta)
        text = fit(doc, format, int(budget * estimator().budget_share))
        omitted = {g.name: g.omitted() for g in doc.groups() if g.omitted()}
        return Summary(
            text, estimate_text(text), budget, level, format, task_type, omitted, estimator().name
        )

    # The original skill's names.

    def minimal(self, *, max_tokens: int | None = None, format: str = "markdown") -> str:
        """The minimal summary (~500 tokens): phase, active task, agent, dependencies."""
        return self.summary("minimal", max_tokens=max_tokens, format=format).text

    def compact(self, *, max_tokens: int | None = None, format: str = "markdown") -> str:
        """The compact summary (~1000 tokens): + in-progress tasks, counts, key variables."""
        return self.summary("compact", max_tokens=max_tokens, format=format).text

    def standard(self, *, max_tokens: int | None = None, format: str = "markdown") -> str:
        """The standard summary (~2000 tokens): + every task, dependency and output."""
        return self.summary("standard", max_tokens=max_tokens, format=format).text

    def full(self, *, max_tokens: int | None = None, format: str = "markdown") -> str:
        """The full summary (~4000 tokens): + every variable, completed phases, metadata."""
        return self.summary("full", max_tokens=max_tokens, format=format).text

    minimal_summary = minimal
    compact_summary = compact
    standard_summary = standard
    full_summary = full

    def for_subagent(
        self,
        task_type: str,
        relevant_keys: Sequence[str] | None = None,
        max_tokens: int = 1000,
        *,
        format: str = "markdown",
    ) -> str:
        """Context for a sub-agent doing ``task_type`` work, with ``relevant_keys`` pinned."""
        return self.summary(
            "compact", max_tokens=max_tokens, task_type=task_type,
            keys=tuple(relevant_keys or ()), format=format,
        ).text  # fmt: skip


def _user(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in checkpoint.items() if k not in STORE_OWNED}


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_key(label: str) -> str:
    return label.lower().replace(" ", "_")
