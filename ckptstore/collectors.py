"""Collectors: how ``ckpt commit`` builds the new checkpoint instead of being handed it.

The pipeline runs in this order; each stage changes what the stages before it built:

1. **inherit** — the session's latest checkpoint (an empty one for a new session);
2. **state** — ``--state FILE``: a full checkpoint replaces the inherited one; with
   ``--merge`` it is a partial state merged section by section (:mod:`ckptstore.merge`);
3. **flags** — ``--phase``, ``--task``, ``--task-add``, ``--active-task``, ``--output``,
   ``--var``, ``--unset-var`` (:mod:`ckptstore.edits`);
4. **environment** — ``CKPT_AGENT_ID`` and ``CKPT_AGENT_TIER`` set ``agent_id`` and
   ``agent_tier``; ``CKPT_SESSION_ID`` names the session when ``--session`` (or its
   variable ``CKPT_SESSION``) does not;
5. **probes** — each dependency declared in ``config.toml`` is checked and its entry in
   ``dependencies`` updated (or appended): ``status``, ``reason``, ``last_checked``
   (:mod:`ckptstore.probes`);
6. **plugins** — every :class:`Collector` registered under the entry-point group
   ``ckptstore.collectors``, then those passed in by the caller. Each gets the
   checkpoint built so far and returns a partial state, merged like ``--merge``.

A collector that raises (or returns something that is not a valid partial state) is
reported by name. With ``[collectors] on_error = "record"`` (the default) the
checkpoint is still written, with the failures listed in its top-level
``collector_errors`` field; with ``"fail"`` the commit fails with
:class:`~ckptstore.errors.CollectorFailed` and nothing is written.

Stages 4-6 run once per commit, before the commit's write; stages 1-3 and the results
of 4-6 are applied again if a concurrent commit moved the session (the commit is rebuilt
on the new head). A commit that only sets variables, with no dependencies, plugins or
environment changes to apply, never loads the checkpoint: it edits the variables tree.

A plugin is a package that declares, in its ``pyproject.toml``::

    [project.entry-points."ckptstore.collectors"]
    git = "my_package.collectors:GitCollector"

and the object named is a collector, a class of one, or a function returning one::

    class GitCollector:
        name = "git"

        def collect(self, context: CollectContext) -> dict[str, Any]:
            return {"variables": {"git_branch": current_branch()}}
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from ckptstore.commits import CommitInfo
from ckptstore.edits import Edits
from ckptstore.errors import CollectorFailed, InvalidSetting
from ckptstore.merge import merge_partial, validate_partial
from ckptstore.objects import copy_value
from ckptstore.validation import fresh_fields

if TYPE_CHECKING:  # probes are imported when a store declares dependencies
    from ckptstore.probes import DependencySpec, ProbeResult

__all__ = [
    "ENTRY_POINT_GROUP",
    "ERRORS_FIELD",
    "Captured",
    "CollectContext",
    "Collector",
    "CollectorError",
    "Environment",
    "Pipeline",
    "discover_collectors",
]

ENTRY_POINT_GROUP: Final = "ckptstore.collectors"
ERRORS_FIELD: Final = "collector_errors"
ENV_AGENT_ID: Final = "CKPT_AGENT_ID"
ENV_AGENT_TIER: Final = "CKPT_AGENT_TIER"
ENV_SESSION: Final = "CKPT_SESSION_ID"


class CollectContext(NamedTuple):
    """What a collector sees: the checkpoint built so far (a copy), the session, the store."""

    state: Mapping[str, Any]
    session: str
    store_path: Path | None


class Collector(Protocol):
    """Contributes state to each checkpoint ``ckpt commit`` makes."""

    name: str

    def collect(self, context: CollectContext) -> Mapping[str, Any] | None:
        """Return a partial state to merge into the checkpoint (``None``: nothing)."""
        ...


class CollectorError(NamedTuple):
    """A collector that failed, and why (``Type: message``)."""

    collector: str
    error: str

    def to_dict(self) -> dict[str, str]:
        """The entry recorded in the checkpoint's ``collector_errors``."""
        return {"collector": self.collector, "error": self.error}


class Captured(NamedTuple):
    """What a capturing commit did: the commit, what the probes found, what failed."""

    commit: CommitInfo
    dependencies: tuple[ProbeResult, ...] = ()
    errors: tuple[CollectorError, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ckpt commit --json``): the commit plus the two lists."""
        return {
            **self.commit.to_dict(),
            "dependencies": [r.to_dict() for r in self.dependencies],
            ERRORS_FIELD: [e.to_dict() for e in self.errors],
        }


class Environment(NamedTuple):
    """The environment stage: agent id, tier and session from ``CKPT_*`` variables."""

    agent_id: str | None = None
    agent_tier: int | None = None
    session: str | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Environment:
        """Read ``CKPT_AGENT_ID``, ``CKPT_AGENT_TIER`` and ``CKPT_SESSION_ID`` (empty = unset).

        Raises:
            InvalidSetting: if ``CKPT_AGENT_TIER`` is not an integer.
        """
        tier_text = environ.get(ENV_AGENT_TIER) or None
        tier = None
        if tier_text is not None:
            try:
                tier = int(tier_text.strip())
            except ValueError:
                raise InvalidSetting(ENV_AGENT_TIER, tier_text, "must be an integer") from None
        return cls(environ.get(ENV_AGENT_ID) or None, tier, environ.get(ENV_SESSION) or None)

    def agent(self, current: tuple[str | None, int | None]) -> tuple[str | None, int | None]:
        """The agent id and tier after this stage, given the current ones."""
        return (
            self.agent_id if self.agent_id is not None else current[0],
            self.agent_tier if self.agent_tier is not None else current[1],
        )

    def apply(self, state: dict[str, Any]) -> None:
        """Set the state's agent fields that the environment names."""
        if self.agent_id is not None:
            state["agent_id"] = self.agent_id
        if self.agent_tier is not None:
            state["agent_tier"] = self.agent_tier


Loader = Callable[[], Any]


_SCANNED: dict[tuple[str, ...], bool] = {}


def _declares_group(group: str) -> bool:
    """Whether any installed distribution declares entry points in ``group``.

    A plain scan of the ``entry_points.txt`` files on ``sys.path``: importing
    ``importlib.metadata`` costs ~70 ms, a third of a ``ckpt`` call, and most
    installations have no plugin at all (measured: 35 distributions scanned in 0.6 ms).
    The answer is kept for as long as ``sys.path`` stays the same, so hooks that
    checkpoint in a loop scan once.
    """
    key = (group, *sys.path)
    if key not in _SCANNED:
        _SCANNED[key] = _scan(group)
    return _SCANNED[key]


def _scan(group: str) -> bool:
    needle = f"[{group}]".encode()
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if not item.name.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(item.path, "entry_points.txt"), "rb") as fh:
                        if needle in fh.read():
                            return True
                except OSError:
                    continue
    return False


def discover_collectors(disabled: Sequence[str] = ()) -> list[tuple[str, Loader]]:
    """The plugin collectors installed under :data:`ENTRY_POINT_GROUP`: (name, loader)."""
    if not _declares_group(ENTRY_POINT_GROUP):
        return []
    from importlib.metadata import entry_points

    found: dict[str, Loader] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in disabled and point.name not in found:
            found[point.name] = point.load
    return sorted(found.items())


def _instantiate(name: str, loaded: Any) -> Collector:
    if isinstance(loaded, type) or (callable(loaded) and not hasattr(loaded, "collect")):
        loaded = loaded()
    if not callable(getattr(loaded, "collect", None)):
        raise TypeError(f"entry point {name!r} gives {type(loaded).__name__}, not a collector")
    return loaded  # type: ignore[no-any-return]


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Pipeline:
    """The collectors of one commit: what each stage contributes, ready to apply.

    ``full`` is a full ``--state`` (prepared: :func:`~ckptstore.validation.prepare_state`),
    ``partial`` a ``--merge`` one; the plugin stage is the ``plugins`` loaders then the
    ``extra`` collectors. ``bound`` is the seconds the checks may take together (None:
    ``probes.DEFAULT_BOUND``). The stages' outcomes gather in ``results``,
    ``contributions`` and ``errors``.
    """

    __slots__ = (
        "bound",
        "contributions",
        "dependencies",
        "edits",
        "environment",
        "errors",
        "extra",
        "full",
        "now",
        "on_error",
        "partial",
        "plugins",
        "results",
    )  # fmt: skip

    def __init__(
        self,
        *,
        full: dict[str, Any] | None = None,
        partial: dict[str, Any] | None = None,
        edits: Edits | None = None,
        environment: Environment | None = None,
        dependencies: Sequence[DependencySpec] = (),
        bound: float | None = None,
        plugins: Sequence[tuple[str, Loader]] = (),
        extra: Sequence[Collector] = (),
        on_error: str = "record",
        now: str = "",
    ) -> None:
        self.full = full
        self.partial = partial
        self.edits = Edits() if edits is None else edits
        self.environment = Environment() if environment is None else environment
        self.dependencies = dependencies
        self.bound = bound
        self.plugins = plugins
        self.extra = extra
        self.on_error = on_error
        self.now = now
        self.results: list[ProbeResult] = []
        self.contributions: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[CollectorError] = []

    @property
    def collects(self) -> bool:
        """Whether the probe or plugin stages have anything to run."""
        return bool(self.dependencies or self.plugins or self.extra)

    def variables_only(self, agent: tuple[str | None, int | None] | None) -> bool:
        """Whether the commit can edit the variables tree alone, on a parent with ``agent``.

        ``agent`` is the parent commit's agent id and tier (``None``: no parent).
        """
        if self.full is not None or self.partial is not None or not self.edits.only_variables():
            return False
        if self.results or self.contributions or self.errors:
            return False
        if agent is None:
            return self.environment.agent((None, None)) == (None, None)
        return self.environment.agent(agent) == agent

    def inputs(self, base: dict[str, Any]) -> dict[str, Any]:
        """Stages 2-4 applied to ``base`` (stage 1): the state, the flags, the environment.

        ``base`` is changed in place and returned (a full ``--state`` replaces it, and
        then ``base`` is not read: callers may pass an empty one).

        Raises:
            InvalidInput: an edit cannot apply (an unknown task id, say).
        """
        state = fresh_fields(self.full) if self.full is not None else base
        if self.partial is not None:
            merge_partial(state, self.partial)
        self.edits.apply(state, now=self.now)
        self.environment.apply(state)
        return state

    def collect(self, base: dict[str, Any], session: str, store_path: Path | None) -> None:
        """Run the probes and the plugins once, on the state stages 1-4 make of ``base``.

        ``base`` is changed in place.

        Raises:
            InvalidInput: an edit cannot apply to ``base`` (checked before any probe).
            CollectorFailed: a collector failed and ``on_error`` is ``"fail"``.
        """
        state = self.inputs(base)
        if self.dependencies:
            from ckptstore.probes import DEFAULT_BOUND, probe_all

            bound = DEFAULT_BOUND if self.bound is None else self.bound
            self.results = probe_all(self.dependencies, bound=bound)
            _apply_probes(state, self.results)
        runners: list[tuple[str, Callable[[], Collector]]] = [
            (name, lambda name=name, load=load: _instantiate(name, load()))  # type: ignore[misc]
            for name, load in self.plugins
        ]
        runners += [
            (str(getattr(c, "name", type(c).__name__)), lambda c=c: c)  # type: ignore[misc]
            for c in self.extra
        ]
        for name, make in runners:
            try:
                collector = make()
                context = CollectContext(copy_value(state), session, store_path)
                partial = collector.collect(context)
                if partial is None:
                    continue
                valid = validate_partial(partial, source=f"collector {name!r}")
            except Exception as err:  # a plugin's failure is reported, not propagated
                if self.on_error == "fail":
                    raise CollectorFailed(name, _describe(err)) from err
                self.errors.append(CollectorError(name, _describe(err)))
                continue
            merge_partial(state, valid)
            self.contributions.append((name, valid))

    def apply(self, base: dict[str, Any]) -> dict[str, Any]:
        """Every stage applied to ``base`` (changed in place): the new checkpoint, unvalidated."""
        state = self.inputs(base)
        _apply_probes(state, self.results)
        for _, partial in self.contributions:
            merge_partial(state, partial)
        if self.plugins or self.extra:
            state.pop(ERRORS_FIELD, None)
        if self.errors:
            state[ERRORS_FIELD] = [e.to_dict() for e in self.errors]
        return state


def _apply_probes(state: dict[str, Any], results: Sequence[ProbeResult]) -> None:
    if not results:
        return
    current = state.get("dependencies")
    entries = (
        [dict(d) if isinstance(d, dict) else d for d in current]
        if isinstance(current, list)
        else []
    )
    for result in results:
        fresh = result.to_dependency()
        matches = [e for e in entries if isinstance(e, dict) and e.get("name") == result.name]
        for entry in matches:
            entry.pop("reason", None)
            entry.update(fresh)
        if not matches:
            entries.append(fresh)
    state["dependencies"] = entries
