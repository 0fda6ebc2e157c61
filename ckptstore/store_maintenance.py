"""The Store facade's maintenance: gc, prune, fsck, stats (``Store`` mixes it in).

Each method is a thin call into its module, imported on use: a commit never loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ckptstore.store_parts import StoreParts

if TYPE_CHECKING:
    from ckptstore.config import Config
    from ckptstore.fsck import FsckReport
    from ckptstore.gc import GCStats, Progress
    from ckptstore.prune import PruneReport
    from ckptstore.retention import RetentionPolicy
    from ckptstore.stats import StoreStats

__all__ = ["MaintenanceMethods"]


class MaintenanceMethods(StoreParts):
    """Maintenance of a store; the rest of the facade is :class:`ckptstore.Store`."""

    if TYPE_CHECKING:

        @property
        def config(self) -> Config:
            """The store's config (:attr:`ckptstore.Store.config`)."""

    def gc(
        self,
        *,
        grace: float | None = None,
        reflog_expiry: float | None = None,
        dry_run: bool = False,
        now: float | None = None,
        progress: Progress | None = None,
        compact: bool = False,
    ) -> GCStats:
        """Delete what nothing reaches (safe alongside commits); see :mod:`ckptstore.gc`.

        ``grace`` and ``reflog_expiry`` are seconds (default: the ``[gc]`` section of
        ``config.toml``, else gc's defaults); ``now`` is the time ages are measured
        against (default: the clock); ``compact`` rewrites the file afterwards.
        """
        from ckptstore.gc import collect_garbage

        grace, reflog_expiry = self._gc_ages(grace, reflog_expiry)
        stats = collect_garbage(
            self.objects, grace=grace, reflog_expiry=reflog_expiry, dry_run=dry_run,
            now=now, progress=progress, compact=compact,
        )  # fmt: skip
        self.objects.drop_cache()  # what was deleted must not be served from memory
        return stats

    def prune(
        self,
        policy: RetentionPolicy | None = None,
        *,
        sessions: Sequence[str] | None = None,
        dry_run: bool = False,
        grace: float | None = None,
        reflog_expiry: float | None = None,
        now: float | None = None,
        progress: Progress | None = None,
        compact: bool = False,
    ) -> PruneReport:
        """Forget checkpoints ``policy`` does not keep, then gc; see :mod:`ckptstore.prune`.

        The default policy keeps the newest 50 checkpoints of every session; session
        heads and tagged checkpoints are always kept. ``grace`` and ``reflog_expiry`` as
        for :meth:`gc`.
        """
        from ckptstore.prune import apply_retention
        from ckptstore.retention import RetentionPolicy

        grace, reflog_expiry = self._gc_ages(grace, reflog_expiry)
        report = apply_retention(
            self.objects, policy or RetentionPolicy(), sessions=sessions, dry_run=dry_run,
            grace=grace, reflog_expiry=reflog_expiry, now=now, progress=progress,
            compact=compact,
        )  # fmt: skip
        self.objects.drop_cache()
        return report

    def _gc_ages(self, grace: float | None, expiry: float | None) -> tuple[float, float]:
        """The grace period and reflog expiry: given, else configured, else the defaults."""
        from ckptstore.gc import DEFAULT_GRACE, DEFAULT_REFLOG_EXPIRY

        config = self.config
        if grace is None:
            grace = DEFAULT_GRACE if config.gc_grace is None else config.gc_grace
        if expiry is None:
            expiry = (
                DEFAULT_REFLOG_EXPIRY
                if config.gc_reflog_expiry is None
                else config.gc_reflog_expiry
            )
        return grace, expiry

    def fsck(self, *, progress: Progress | None = None) -> FsckReport:
        """Check every object, link and ref; see :mod:`ckptstore.fsck`."""
        from ckptstore.fsck import check_store

        return check_store(self.objects, progress=progress)

    def stats(self, *, top: int = 10, progress: Progress | None = None) -> StoreStats:
        """Count objects and measure dedup and compression; see :mod:`ckptstore.stats`."""
        from ckptstore.stats import collect_stats

        return collect_stats(self.objects, top=top, progress=progress)
