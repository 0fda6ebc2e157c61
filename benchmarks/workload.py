"""Seeded workload: long-running agent sessions as checkpoints in the seed's JSON format.

Each step of a session yields one whole checkpoint, as the original skill wrote it
(``checkpoint_id``, ``created_at``, ``session_id``, ``content_hash``,
``parent_checkpoint_id`` and ``estimated_tokens`` included). The dynamics follow issue 7:

- a task list that grows to hundreds (capped at ``max_tasks``), 1-3 status changes a step;
- dependencies whose ``last_checked`` is refreshed every step and whose status
  sometimes flips;
- a few small variables changed every step;
- a handful of large text variables (5-50 KB: a plan, a scratchpad...) edited by small
  insertions, with an occasional deletion that keeps them inside their size band;
- ``recent_outputs`` as a sliding window of the last 20 records;
- a phase change every few hundred steps.

Profiles: ``tiny`` (for tests), ``short`` (~500 checkpoints), ``long`` (~10,000),
``fleet`` (20 sessions forked from one base, round-robin) and ``bigstate`` (~10,000
tasks and ~2,000 variables; each step changes exactly 3 entries: 2 task statuses and 1
variable, so the bytes a 3-entry commit writes can be read off directly).

The same seed gives the same checkpoints, byte for byte. The simulator never mutates a
dict or list it has yielded (copy on write), so consumers may keep what they receive.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["PROFILES", "Profile", "Step", "generate", "profile"]

_WORDS = (  # noqa: SIM905 - a sentence reads better than 45 quoted words
    "verify the rollout then record evidence and re-check first cache schema migration "
    "index query token session store parser config module service worker queue batch "
    "stream buffer payload client server endpoint retry timeout handler fix refactor "
    "test coverage benchmark latency throughput memory disk ledger vault gateway"
).split()
_NOUNS = ("ledger", "vault", "gateway", "planner", "indexer", "billing", "auth", "cache")
_SUBJECTS = (
    "Provision {} bucket",
    "Rotate {} credentials",
    "Write tests for {}",
    "Migrate {} schema",
    "Review {} policy",
    "Deploy {} service",
    "Benchmark {} path",
    "Document {} API",
)
_OUTPUT_TYPES = ("evidence", "tool_result", "file_edit", "test_run", "command")
_PHASES = (
    "Foundation",
    "Agent Bootstrapping",
    "Multi-agent hand-off",
    "Observability",
    "Hardening",
    "Marketplace",
    "Multi-tenant",
    "Release",
)
_BIG_TEXT = (("plan", 30_000), ("scratchpad", 12_000), ("design_notes", 45_000), ("log", 6_000))
_T0 = datetime(2026, 1, 23, 10, 0, tzinfo=UTC)
_WINDOW = 20


@dataclass(frozen=True)
class Profile:
    """How many sessions, how many steps, and how big the state is."""

    name: str
    base_steps: int
    forks: int = 0
    fork_steps: int = 0
    start_tasks: int = 20
    max_tasks: int = 400
    small_vars: int = 40
    big_text: bool = True
    big_state: bool = False

    @property
    def checkpoints(self) -> int:
        """The number of checkpoints the profile yields."""
        return self.base_steps + self.forks * self.fork_steps


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("tiny", base_steps=12, forks=2, fork_steps=4, start_tasks=8, max_tasks=30),
        Profile("short", base_steps=500),
        Profile("long", base_steps=10_000),
        Profile("fleet", base_steps=300, forks=20, fork_steps=100),
        Profile(
            "bigstate",
            base_steps=40,
            start_tasks=10_000,
            max_tasks=10_000,
            small_vars=2_000,
            big_text=False,
            big_state=True,
        ),
    )
}

QUICK: dict[str, Profile] = {
    "short": Profile("short-quick", base_steps=60),
    "long": Profile("long-quick", base_steps=150),
    "fleet": Profile("fleet-quick", base_steps=30, forks=4, fork_steps=10),
    "bigstate": Profile(
        "bigstate-quick",
        base_steps=6,
        start_tasks=2_000,
        max_tasks=2_000,
        small_vars=400,
        big_text=False,
        big_state=True,
    ),
    "tiny": PROFILES["tiny"],
}


def profile(name: str, *, quick: bool = False) -> Profile:
    """Look a profile up by name (``quick`` gives its scaled-down CI variant)."""
    table = QUICK if quick else PROFILES
    if name not in table:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(sorted(table))}")
    return table[name]


@dataclass(frozen=True)
class Step:
    """One checkpoint of the workload, in commit order."""

    index: int
    session: str
    fork_of: str | None  # the session this one branches from, on its first checkpoint only
    state: dict[str, Any]


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def _text(rng: random.Random, size: int) -> str:
    lines = []
    total = 0
    n = 1
    while total < size:
        line = f"{n}. {_words(rng, 6, 16)}"
        lines.append(line)
        total += len(line) + 1
        n += 1
    return "\n".join(lines)


@dataclass
class _Session:
    """The evolving state of one simulated session (copy on write)."""

    rng: random.Random
    name: str
    big_state: bool
    max_tasks: int
    clock: datetime = _T0
    tasks: list[dict[str, Any]] = field(default_factory=list)
    deps: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    bands: dict[str, tuple[int, int]] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    phase: dict[str, Any] = field(default_factory=dict)
    completed: list[int] = field(default_factory=list)
    next_phase_at: int = 0
    steps: int = 0
    out_seq: int = 0
    parent_id: str | None = None

    def fork(self, rng: random.Random, name: str) -> _Session:
        """A copy that evolves on its own from here (shares immutable leaves)."""
        return _Session(
            rng=rng,
            name=name,
            big_state=self.big_state,
            max_tasks=self.max_tasks,
            clock=self.clock,
            tasks=list(self.tasks),
            deps=list(self.deps),
            variables=dict(self.variables),
            bands=dict(self.bands),
            outputs=list(self.outputs),
            phase=self.phase,
            completed=list(self.completed),
            next_phase_at=self.next_phase_at,
            steps=self.steps,
            out_seq=self.out_seq,
            parent_id=self.parent_id,
        )

    # --- building ------------------------------------------------------------------

    def _new_task(self) -> dict[str, Any]:
        rng = self.rng
        n = len(self.tasks) + 1
        ids = [t["id"] for t in self.tasks[-50:]]
        return {
            "id": f"T{n:05d}",
            "subject": rng.choice(_SUBJECTS).format(rng.choice(_NOUNS)) + f" ({n})",
            "status": "pending",
            "owner": None,
            "blocks": [],
            "blocked_by": rng.sample(ids, k=min(len(ids), rng.choice((0, 0, 0, 1, 2)))),
        }

    def _output(self) -> dict[str, Any]:
        rng = self.rng
        self.out_seq += 1
        return {
            "type": rng.choice(_OUTPUT_TYPES),
            "id": f"evd-{self.name}-{self.out_seq:06d}",
            "action": f"{rng.choice(_NOUNS)}: {_words(rng, 3, 9)}",
            "success": rng.random() > 0.1,
            "timestamp": self.clock.isoformat(),
        }

    def setup(self, start_tasks: int, small_vars: int, big_text: bool) -> None:
        rng = self.rng
        for _ in range(start_tasks):
            self.tasks.append(self._new_task())
        self.deps = [
            {
                "name": name,
                "type": kind,
                "status": "available",
                "endpoint": url,
                "last_checked": self.clock.isoformat(),
            }
            for name, kind, url in (
                ("vault", "service", "https://127.0.0.1:8200"),
                ("dragonfly", "cache", "redis://127.0.0.1:6379"),
                ("ledger", "database", "sqlite:///var/lib/ledger.db"),
                ("registry", "service", "https://registry.internal:5000"),
                ("metrics", "service", "http://127.0.0.1:9090"),
                ("queue", "broker", "amqp://127.0.0.1:5672"),
                ("search", "service", "http://127.0.0.1:9200"),
                ("blobstore", "storage", "s3://agent-artifacts"),
            )
        ]
        for i in range(small_vars):
            kind = i % 4
            name = f"var_{i:04d}"
            if kind == 0:
                self.variables[name] = rng.randint(0, 10**6)
            elif kind == 1:
                self.variables[name] = rng.random() < 0.5
            elif kind == 2:
                self.variables[name] = _words(rng, 1, 6)
            else:
                self.variables[name] = [rng.choice(_NOUNS) for _ in range(rng.randint(0, 4))]
        if big_text:
            for name, size in _BIG_TEXT:
                self.variables[name] = _text(rng, size)
                self.bands[name] = (max(5_000, size * 8 // 10), min(50_000, size * 12 // 10))
        self.outputs = [self._output() for _ in range(_WINDOW)]
        self.phase = {
            "name": f"Phase 1: {_PHASES[0]}",
            "number": 1,
            "status": "in_progress",
            "started_at": self.clock.isoformat(),
            "notes": _words(rng, 5, 12),
        }
        self.next_phase_at = rng.randint(300, 500)

    # --- one step ------------------------------------------------------------------

    def _set_task(self, index: int, **changes: Any) -> None:
        self.tasks[index] = {**self.tasks[index], **changes}

    def _change_status(self) -> None:
        rng = self.rng
        index = rng.randrange(len(self.tasks))
        status = self.tasks[index]["status"]
        nxt = {
            "pending": "in_progress",
            "in_progress": rng.choice(("completed", "completed", "blocked")),
            "blocked": "in_progress",
            "completed": "in_progress",  # reopened
        }[status]
        owner = f"agent-{rng.randint(1, 9)}" if nxt == "in_progress" else self.tasks[index]["owner"]
        self._set_task(index, status=nxt, owner=owner)

    def _edit_text(self, name: str) -> None:
        rng = self.rng
        text: str = self.variables[name]
        low, high = self.bands[name]
        cut = rng.randrange(len(text) + 1)
        if len(text) > high:
            # Trim a stretch of old notes, keeping the variable inside its size band.
            span = rng.randint(len(text) - high, len(text) - low)
            start = rng.randrange(len(text) - span + 1)
            text = text[:start] + text[start + span :]
        else:
            text = text[:cut] + f" [{self.steps}: {_words(rng, 2, 20)}]" + text[cut:]
        self.variables[name] = text

    def step(self) -> None:
        rng = self.rng
        self.steps += 1
        self.clock += timedelta(seconds=rng.randint(20, 90))
        if self.big_state:
            # Exactly 3 entries change: 2 task statuses and 1 variable.
            first = rng.randrange(len(self.tasks))
            second = (first + 1 + rng.randrange(len(self.tasks) - 1)) % len(self.tasks)
            for index in (first, second):
                status = self.tasks[index]["status"]
                new = "completed" if status != "completed" else "in_progress"
                self._set_task(index, status=new)
            name = rng.choice(list(self.variables))
            self.variables[name] = f"step {self.steps}: {_words(rng, 1, 4)}"
            return
        if len(self.tasks) < self.max_tasks and rng.random() < 0.25:
            self.tasks.append(self._new_task())
        for _ in range(rng.randint(1, 3)):
            self._change_status()
        stamp = self.clock.isoformat()
        deps = []
        for dep in self.deps:
            changes: dict[str, Any] = {"last_checked": stamp}
            if rng.random() < 0.02:
                changes["status"] = "unavailable" if dep["status"] == "available" else "available"
            deps.append({**dep, **changes})
        self.deps = deps
        small = [k for k in self.variables if k not in self.bands]
        for name in rng.sample(small, k=min(len(small), rng.randint(1, 4))):
            value = self.variables[name]
            if isinstance(value, bool):
                self.variables[name] = not value
            elif isinstance(value, int):
                self.variables[name] = value + rng.randint(1, 50)
            elif isinstance(value, str):
                self.variables[name] = _words(rng, 1, 6)
            else:
                self.variables[name] = [*value[-3:], rng.choice(_NOUNS)]
        big = list(self.bands)
        for name in rng.sample(big, k=min(len(big), rng.randint(1, 2))):
            self._edit_text(name)
        self.outputs = [*self.outputs[1 - _WINDOW :], self._output()]
        if self.steps >= self.next_phase_at:
            number = self.phase["number"] + 1
            self.completed = [*self.completed, self.phase["number"]]
            self.phase = {
                "name": f"Phase {number}: {_PHASES[(number - 1) % len(_PHASES)]}",
                "number": number,
                "status": "in_progress",
                "started_at": stamp,
                "notes": _words(rng, 5, 12),
            }
            self.next_phase_at = self.steps + rng.randint(300, 500)

    def snapshot(self) -> dict[str, Any]:
        """The current checkpoint in the seed's format (fresh top-level containers)."""
        active = next((t["id"] for t in self.tasks if t["status"] == "in_progress"), None)
        content: dict[str, Any] = {
            "phase": self.phase,
            "phases_completed": list(self.completed),
            "tasks": list(self.tasks),
            "active_task_id": active,
            "dependencies": list(self.deps),
            "variables": dict(self.variables),
            "recent_outputs": list(self.outputs),
            "agent_id": f"agent-{self.name}",
            "agent_tier": 1,
        }
        body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(body).hexdigest()
        stamp = self.clock.strftime("%Y%m%d-%H%M%S")
        checkpoint_id = f"ckpt-{stamp}-{self.rng.getrandbits(32):08x}"
        state = {
            "checkpoint_id": checkpoint_id,
            "created_at": self.clock.isoformat(timespec="microseconds"),
            "session_id": self.name,
            **content,
            "content_hash": digest,
            "parent_checkpoint_id": self.parent_id,
            "estimated_tokens": len(body) // 4,
        }
        self.parent_id = checkpoint_id
        return state


def generate(prof: Profile, *, seed: int = 7) -> Iterator[Step]:
    """Yield the profile's checkpoints in commit order (forks round-robin)."""
    rng = random.Random(seed)
    base = _Session(
        random.Random(rng.getrandbits(64)), "main", prof.big_state, max_tasks=prof.max_tasks
    )
    base.setup(prof.start_tasks, prof.small_vars, prof.big_text)
    index = 0
    for n in range(prof.base_steps):
        if n:
            base.step()
        yield Step(index, base.name, None, base.snapshot())
        index += 1
    forks = [
        base.fork(random.Random(rng.getrandbits(64)), f"fork-{i:02d}") for i in range(prof.forks)
    ]
    for n in range(prof.fork_steps):
        for session in forks:
            session.step()
            yield Step(index, session.name, "main" if n == 0 else None, session.snapshot())
            index += 1
