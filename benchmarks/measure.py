"""The lockstep runner: every peer commits, loads and diffs the same checkpoints in turn.

Per checkpoint of the workload each peer commits it (the order of the peers rotates
from one checkpoint to the next, so caches and machine noise hit all alike). At
milestones (100, 1,000, 10,000 checkpoints and the end) each peer loads the same random
checkpoints of the whole history, the same fixed checkpoints of the first 100 (so load
time at 100 and at 10,000 checkpoints of history compare on equal states), and diffs
the same parent-child pairs. Every load is compared field by field with what
was committed (through digests, so a 10,000-checkpoint run does not hold the history in
memory); a mismatch raises :class:`Mismatch` and fails the run.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import Peer, make_peers
from peers.base import Sizes, run_rusage
from peers.ckpt import CkptPeer
from peers.floor import FloorPeer
from peers.git import GitPeer
from startup import measure as measure_startup
from workload import Profile, generate

__all__ = ["Mismatch", "Options", "PeerResult", "Result", "run"]


class Mismatch(Exception):
    """A peer loaded something other than what was committed."""


@dataclass
class Options:
    """What to run and how much to sample."""

    peers: list[str]
    seed: int = 7
    load_samples: int = 200
    diff_samples: int = 50
    cli_samples: int = 40
    verify_all: bool = True
    workdir: Path | None = None
    progress: bool = False
    startup_samples: int = 0  # CLI start-up probes after the run (0: none)
    twin_history: int = 100  # a second store per peer holding only this many checkpoints


@dataclass
class PeerResult:
    """What one peer did in the run."""

    name: str
    durability: str
    commit_s: list[float] = field(default_factory=list)  # in-process commits (not CLI steps)
    cli_s: list[float] = field(default_factory=list)  # ckpt commit / git add+commit, CLI steps
    # ckpt commit handed to a running `ckpt serve` (every other CLI step; cli_s the rest)
    cli_served_s: list[float] = field(default_factory=list)
    loads: dict[int, list[float]] = field(default_factory=dict)  # milestone -> seconds
    # The same checkpoints (drawn from the first 100) loaded at every milestone: how load
    # time depends on the length of history alone, not on the checkpoints growing.
    early: dict[int, list[float]] = field(default_factory=dict)
    # The same early checkpoints loaded at the end, alternately from a twin store that
    # holds only the first ``twin_history`` checkpoints and from the full store: the
    # effect of history length alone, at the same moment (machine load drifts over a
    # long run, which milestone-to-milestone comparisons cannot separate from it).
    twin_short: list[float] = field(default_factory=list)
    twin_long: list[float] = field(default_factory=list)
    diffs: list[float] = field(default_factory=list)
    diff_note: str = ""
    sizes: dict[int, Sizes] = field(default_factory=dict)  # milestone -> sizes while open
    final: Sizes | None = None
    gc_s: float | None = None
    gc_note: str = ""
    rss_kib: int | None = None
    verified: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """The whole run."""

    profile: Profile
    checkpoints: int
    sessions: int
    peers: dict[str, PeerResult]
    skipped: dict[str, str]
    milestones: list[int]
    twin_history: int
    cli_steps: int
    process_rss_kib: int
    seconds: float
    root: Path
    bytes_per_commit: list[int] = field(default_factory=list)  # ckptstore, compressed
    objects_per_commit: list[int] = field(default_factory=list)
    startup: dict[str, Any] = field(default_factory=dict)


def _digest(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _digests(state: dict[str, Any]) -> dict[str, bytes]:
    return {name: _digest(value) for name, value in state.items()}


def verify(peer: Peer, index: int, loaded: dict[str, Any], expected: dict[str, bytes]) -> None:
    """Raise :class:`Mismatch` unless ``loaded`` equals the checkpoint committed at ``index``."""
    skip = peer.rewrites
    want = {k for k in expected if k not in skip}
    got = {k for k in loaded if k not in skip}
    if want != got:
        raise Mismatch(
            f"{peer.name}: checkpoint #{index} came back with fields {sorted(got ^ want)} "
            "added or missing"
        )
    wrong = sorted(k for k in want if _digest(loaded[k]) != expected[k])
    if wrong:
        raise Mismatch(f"{peer.name}: checkpoint #{index} came back with different {wrong}")


def _milestones(total: int) -> list[int]:
    return sorted({m for m in (100, 1_000, 10_000) if m < total} | {total})


def _every(total: int, samples: int) -> int:
    # At most every 4th checkpoint goes through the CLI, so in-process figures keep
    # three quarters of the checkpoints even on short profiles (bigstate has 40).
    return max(4, total // max(1, samples))


def run(profile: Profile, options: Options) -> Result:
    """Run the workload through every available peer in lockstep; see the module doc."""
    started = time.perf_counter()
    startup: dict[str, Any] = {}
    peers, skipped = make_peers(options.peers)
    root = Path(tempfile.mkdtemp(prefix=f"ckpt-bench-{profile.name}-", dir=options.workdir))
    for peer in peers:
        peer.open(root)
    total = profile.checkpoints
    twin_at = options.twin_history if 0 < options.twin_history < total else 0
    twins: dict[str, Peer] = {}
    if twin_at:
        for peer in peers:
            if peer.timed:
                twins[peer.name] = type(peer)()
                twins[peer.name].open(root / "twin")
    twin_keys: dict[str, list[Any]] = {name: [] for name in twins}
    results = {p.name: PeerResult(p.name, p.durability) for p in peers}
    timed = [p for p in peers if p.timed]
    ckpt = next((p for p in peers if isinstance(p, CkptPeer)), None)
    git = next((p for p in peers if isinstance(p, GitPeer)), None)
    milestones = _milestones(total)
    cli_every = _every(total, options.cli_samples) if options.cli_samples else 0
    cli_file = root / "cli" / "checkpoint.json"
    cli_file.parent.mkdir()
    if ckpt is not None and cli_every:
        ckpt.start_server(root / "cli" / "serve.log")
    expected: list[dict[str, bytes]] = []
    keys: dict[str, list[Any]] = {p.name: [] for p in peers}
    parent: list[int | None] = []
    last_in: dict[str, int] = {}
    sessions: set[str] = set()
    cli_steps = 0
    latest: dict[str, dict[str, Any]] = {}
    try:
        for step in generate(profile, seed=options.seed):
            i = step.index
            expected.append(_digests(step.state))
            parent.append(last_in.get(step.session, last_in.get(step.fork_of or "")))
            last_in[step.session] = i
            sessions.add(step.session)
            latest[step.session] = step.state
            via_cli = ckpt is not None and cli_every and i % cli_every == cli_every - 1
            if via_cli:
                cli_file.write_text(json.dumps(step.state, indent=2), encoding="utf-8")
                cli_steps += 1
            shift = i % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                staged = peer.stage(step.state, step.session, step.fork_of)
                res = results[peer.name]
                if via_cli and peer is ckpt:
                    served = cli_steps % 2 == 0  # alternately, so drift hits both alike
                    key, seconds = ckpt.cli_commit(cli_file, step.session, served=served)
                    (res.cli_served_s if served else res.cli_s).append(seconds)
                else:
                    t0 = time.perf_counter()
                    key = peer.commit(staged)
                    seconds = time.perf_counter() - t0
                    key = peer.settle(staged, key)
                    if peer.timed and not via_cli:
                        res.commit_s.append(seconds)
                    if via_cli and peer is git:
                        res.cli_s.append(git.add_commit_seconds[-1])
                keys[peer.name].append(key)
            if i < twin_at:
                for name, twin in twins.items():  # untimed
                    staged = twin.stage(step.state, step.session, step.fork_of)
                    twin_keys[name].append(twin.settle(staged, twin.commit(staged)))
            done = i + 1
            if done in milestones:
                _milestone(done, timed, results, keys, expected, parent, options)
                if options.progress:
                    elapsed = time.perf_counter() - started
                    print(f"  {done}/{total} checkpoints, {elapsed:.0f} s", flush=True)
        if twins:
            _history_length(twin_at, timed, twins, results, keys, twin_keys, expected, options)
        if options.verify_all:
            _verify_all(timed, results, keys, expected)
        for peer in timed:
            argv = peer.load_latest_argv(keys[peer.name][-1])
            if argv is not None:
                status, rss = run_rusage(argv)
                if status != 0:
                    raise Mismatch(f"{peer.name}: loading the latest checkpoint failed: {argv}")
                results[peer.name].rss_kib = rss
        if ckpt is not None:
            _gc(ckpt, results[ckpt.name])
        for peer in peers:
            results[peer.name].extra = peer.finish()
            results[peer.name].final = peer.sizes()
        for peer in peers:
            if isinstance(peer, FloorPeer):
                for n, state in enumerate(peer.iter_back()):
                    verify(peer, n, state, expected[n])
                    results[peer.name].verified += 1
        if ckpt is not None and options.startup_samples:
            startup = measure_startup(
                ckpt.dir, git, latest["main"], "main", options.startup_samples
            )
    finally:
        for peer in [*peers, *twins.values()]:
            peer.close()
    result = Result(
        profile=profile,
        checkpoints=len(expected),
        sessions=len(sessions),
        peers=results,
        skipped=skipped,
        milestones=milestones,
        twin_history=twin_at,
        cli_steps=cli_steps,
        process_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        seconds=time.perf_counter() - started,
        root=root,
        startup=startup,
    )
    if ckpt is not None:
        result.bytes_per_commit = ckpt.written
        result.objects_per_commit = ckpt.new_objects
    return result


def _milestone(
    done: int,
    peers: list[Peer],
    results: dict[str, PeerResult],
    keys: dict[str, list[Any]],
    expected: list[dict[str, bytes]],
    parent: list[int | None],
    options: Options,
) -> None:
    """Sizes, random loads and diffs with ``done`` checkpoints of history."""
    for peer in peers:
        results[peer.name].sizes[done] = peer.sizes()
    rng = random.Random(options.seed * 1_000_003 + done)
    picks = [(rng.randrange(done), False) for _ in range(options.load_samples)]
    first = random.Random(options.seed)
    picks += [(first.randrange(min(done, 100)), True) for _ in range(options.load_samples)]
    rng.shuffle(picks)
    for n, (index, early) in enumerate(picks):
        shift = n % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            t0 = time.perf_counter()
            loaded = peer.load(keys[peer.name][index])
            seconds = time.perf_counter() - t0
            verify(peer, index, loaded, expected[index])
            res = results[peer.name]
            (res.early if early else res.loads).setdefault(done, []).append(seconds)
            res.verified += 1
    pairs = [(parent[i], i) for i in (rng.randrange(done) for _ in range(options.diff_samples))]
    for n, (old, new) in enumerate(p for p in pairs if p[0] is not None):
        shift = n % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            res = results[peer.name]
            if res.diff_note:
                continue
            t0 = time.perf_counter()
            try:
                peer.diff(keys[peer.name][old], keys[peer.name][new])
            except NotImplementedError as err:
                res.diff_note = str(err)
                continue
            res.diffs.append(time.perf_counter() - t0)


def _history_length(
    twin_at: int,
    peers: list[Peer],
    twins: dict[str, Peer],
    results: dict[str, PeerResult],
    keys: dict[str, list[Any]],
    twin_keys: dict[str, list[Any]],
    expected: list[dict[str, bytes]],
    options: Options,
) -> None:
    """Load the same early checkpoints from the twin (short history) and the full store."""
    first = random.Random(options.seed)
    picks = [first.randrange(twin_at) for _ in range(options.load_samples)]
    for n, index in enumerate(picks):
        shift = n % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            res = results[peer.name]
            pair = [(twins[peer.name], twin_keys, res.twin_short), (peer, keys, res.twin_long)]
            for who, where, into in pair if n % 2 else pair[::-1]:
                t0 = time.perf_counter()
                loaded = who.load(where[peer.name][index])
                into.append(time.perf_counter() - t0)
                verify(peer, index, loaded, expected[index])
                res.verified += 1


def _verify_all(
    peers: Iterable[Peer],
    results: dict[str, PeerResult],
    keys: dict[str, list[Any]],
    expected: list[dict[str, bytes]],
) -> None:
    """Load every checkpoint from every peer (untimed) and compare it with the commit."""
    for peer in peers:
        for index, key in enumerate(keys[peer.name]):
            verify(peer, index, peer.load(key), expected[index])
            results[peer.name].verified += 1


def _gc(ckpt: CkptPeer, res: PeerResult) -> None:
    t0 = time.perf_counter()
    try:
        ckpt.gc()
    except NotImplementedError as err:
        res.gc_note = str(err)
        return
    res.gc_s = time.perf_counter() - t0
