"""The Store facade's capture: ``ckpt commit``'s checkpoint, built by the collectors.

:class:`ckptstore.Store` mixes it in: :meth:`~CaptureMethods.capture` (the inherited
state, then the given state, edits, environment, probes and plugins), the
auto-checkpoint hooks over it, and the dependency checks the probes run. The
collectors, edits and merge modules are imported when a capture runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptstore.commit_object import Commit
from ckptstore.commits import now_iso, read_commit
from ckptstore.errors import InvalidOption
from ckptstore.objects import copy_value
from ckptstore.publish import edit_build, publish
from ckptstore.refs import check_name
from ckptstore.snapshot import Built, empty_state, read_state
from ckptstore.store_parts import StoreParts
from ckptstore.token_delta import write_counted
from ckptstore.validation import prepare_state, validate_variables

if TYPE_CHECKING:
    from ckptstore.collectors import Captured, Collector
    from ckptstore.config import Config
    from ckptstore.edits import Edits
    from ckptstore.probes import ProbeResult
    from ckptstore.session import AutoCheckpoint

__all__ = ["CaptureMethods"]


class CaptureMethods(StoreParts):
    """Capturing checkpoints; the rest of the facade is :class:`ckptstore.Store`."""

    path: Path | None

    if TYPE_CHECKING:

        @property
        def config(self) -> Config:
            """The store's config (:attr:`ckptstore.Store.config`)."""

        def mark_secret(self, names: Iterable[str]) -> None:
            """Mark names secret (:meth:`ckptstore.Store.mark_secret`)."""

    def capture(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        session: str | None = None,
        merge: bool = False,
        edits: Edits | None = None,
        variables: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        notes: str = "",
        source: str = "",
        secret: Sequence[str] = (),
        probe: bool = True,
        plugins: bool = True,
        collectors: Sequence[Collector] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Captured:
        """Build a checkpoint with the collectors and record it (what ``ckpt commit`` does).

        The session's latest checkpoint, then ``state`` (a full one, or a partial one
        with ``merge``), ``edits`` and ``variables``/``unset``, the environment
        (``environ``, default ``os.environ``), the dependency probes (unless ``probe``
        is false) and the plugin collectors (unless ``plugins`` is false), then
        ``collectors``; see :mod:`ckptstore.collectors` for each stage.

        Raises:
            InvalidInput: a state, edit, variable or setting is not valid; nothing is
                written.
            CollectorFailed: a collector failed and the config says to fail.
        """
        from ckptstore.collectors import Captured, Environment, Pipeline, discover_collectors
        from ckptstore.edits import Edits
        from ckptstore.merge import validate_partial

        config = self.config
        environment = Environment.read(os.environ if environ is None else environ)
        given = partial = None
        if state is not None and merge:
            partial = validate_partial(state, source=source)
        elif state is not None:
            # Kept prepared: each use makes values of its own from the records' bytes.
            given = prepare_state(state, source=source)
        elif merge:
            raise InvalidOption("merge", True, "needs a partial state to merge (--state FILE)")
        assign = validate_variables(variables, source=source)
        stamp = now_iso()
        pipeline = Pipeline(
            full=given,
            partial=partial,
            edits=(edits or Edits()).with_variables(assign, unset),
            environment=environment,
            dependencies=config.dependencies if probe else (),
            bound=config.probe_bound,
            plugins=discover_collectors(config.disabled_collectors)
            if plugins and config.plugins
            else (),
            extra=collectors,
            on_error=config.collector_errors,
            now=stamp,
        )
        name = check_name(session or environment.session or self.current_session)
        loaded: dict[bytes | None, dict[str, Any]] = {}  # root tree id -> its state
        if pipeline.collects:
            head = self.refs.session_head(name)
            parent = read_commit(self.objects, head) if head is not None else None
            tree = parent.tree if parent is not None else None
            loaded[tree] = {} if given is not None else self._base_state(parent)
            # Edits are checked on a copy before probes and plugins spend any time; the
            # first build reuses the loaded state.
            pipeline.collect(copy_value(loaded[tree]), name, self.path)
        self.mark_secret(secret)

        def build(parent: Commit | None) -> tuple[Built, tuple[str | None, int | None]]:
            agent = (parent.agent_id, parent.agent_tier) if parent is not None else None
            if pipeline.variables_only(agent):
                edits = pipeline.edits
                return edit_build(self.objects, None, parent, edits.variables, edits.unset)
            base = loaded.pop(parent.tree if parent is not None else None, None)
            if base is None:  # a full state replaces the parent's: no need to read it
                base = {} if given is not None else self._base_state(parent)
            state = pipeline.apply(base)
            built = write_counted(self.objects, prepare_state(state, source=source), parent)
            return built, built.agent

        info = publish(self.objects, self.refs, name, build, notes=notes, created_at=stamp)
        return Captured(info, tuple(pipeline.results), tuple(pipeline.errors))

    def session(self, name: str | None = None, *, probe: bool = True) -> AutoCheckpoint:
        """Auto-checkpoint hooks for session ``name`` (default: HEAD's): :mod:`~ckptstore.session`.

        ``with store.session("agent-1") as s:`` records a checkpoint with the error when
        the block raises, then re-raises.
        """
        from ckptstore.session import AutoCheckpoint

        return AutoCheckpoint(self, check_name(name or self.current_session), probe=probe)

    def check_dependencies(self) -> list[ProbeResult]:
        """Check the dependencies ``config.toml`` declares, now (``ckpt deps``)."""
        from ckptstore.probes import probe_all

        config = self.config
        return probe_all(config.dependencies, bound=config.probe_bound)

    def _base_state(self, parent: Commit | None) -> dict[str, Any]:
        """The state a commit inherits: its parent's (an empty one for a new session)."""
        return empty_state() if parent is None else read_state(self.objects, parent.tree)
