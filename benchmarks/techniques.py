"""What the storage techniques of issue 7 would give, prototyped on the workload's objects.

Nothing here changes ckptstore: each checkpoint of one session is turned into objects
with ckptstore's own ``write_state`` (the same blobs and tree nodes a commit writes),
objects already seen are skipped (as the store deduplicates them), and the new ones are
compressed several ways:

- ``small``: blobs under 2 KiB (one task, dependency, output or small variable):
  zstd-3 per object as stored today, and with a zstd dictionary trained on the first
  records of the session (8 and 32 KiB);
- ``large``: blobs of 2 KiB and more (the big text variables): zstd-3 per object as
  today, and zstd-3 with the previous version of the same variable as a raw-content
  dictionary (a delta), a full version every ``--chain`` versions;
- ``trees``: the new tree nodes of a commit, zstd-3 per node as today, and as one frame
  with the previous commit's nodes as a raw-content dictionary (delta-encoded nodes).

    python benchmarks/techniques.py --profile long      # figures per checkpoint
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import zstandard

from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.snapshot import write_state
from ckptstore.validation import validate_state
from workload import PROFILES, generate, profile

__all__ = ["Tally", "main", "measure"]

_SMALL = 2048
_TRAIN_RECORDS = 2000  # records the dictionary is trained on (the session's first ones)
_DICT_SIZES = (8 * 1024, 32 * 1024)


def _dict_label(size: int) -> str:
    return f"zstd-3 with a {size // 1024} KiB dictionary trained on the first records"


@dataclass
class Tally:
    """Bytes per technique, summed over the run."""

    raw: dict[str, int] = field(default_factory=dict)
    out: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)

    def add(self, group: str, technique: str, raw: int, out: int) -> None:
        key = f"{group}: {technique}"
        self.raw[key] = self.raw.get(key, 0) + raw
        self.out[key] = self.out.get(key, 0) + out
        self.objects[key] = self.objects.get(key, 0) + 1


def _states(name: str, quick: bool, seed: int) -> Iterator[dict[str, Any]]:
    for step in generate(profile(name, quick=quick), seed=seed):
        if step.session == "main":
            yield step.state


def _raw_dict(data: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def measure(name: str, *, quick: bool = False, seed: int = 7, chain: int = 64) -> dict[str, Any]:
    """Run the prototypes over one session of the profile; return bytes per checkpoint."""
    plain = zstandard.ZstdCompressor(level=3, write_checksum=False)
    seen: set[bytes] = set()
    tally = Tally()
    training: list[bytes] = []
    dicts: dict[int, zstandard.ZstdCompressor] = {}
    previous_var: dict[str, tuple[bytes, int]] = {}  # name -> (encoded, depth)
    previous_nodes = b""
    commits = 0
    started = time.perf_counter()
    for state in _states(name, quick, seed):
        commits += 1
        built = write_state(validate_state(state))
        owner = {
            object_id(Kind.BLOB, encoded): key
            for key, value in state.get("variables", {}).items()
            if isinstance(value, str) and len(encoded := pack_canonical(value)) >= _SMALL
        }
        nodes = b"".join(data for kind, data in built.pending.values() if kind == Kind.TREE)
        new_nodes = []
        new_all: list[bytes] = []
        replaced: list[bytes] = []
        for oid, (kind, data) in built.pending.items():
            if oid in seen:
                continue
            seen.add(oid)
            new_all.append(data)
            if kind == Kind.TREE:
                new_nodes.append(data)
                tally.add("trees", "zstd-3 per node (today)", len(data), _stored(plain, data))
            elif len(data) < _SMALL:
                tally.add("small", "zstd-3 per object (today)", len(data), _stored(plain, data))
                if len(training) < _TRAIN_RECORDS:
                    # Stored before any dictionary exists: plain zstd, then trained on.
                    training.append(data)
                    for size in _DICT_SIZES:
                        tally.add("small", _dict_label(size), len(data), _stored(plain, data))
                else:
                    _small_with_dicts(tally, dicts, training, [data])
            else:
                tally.add(
                    "large", "zstd-3 per object (today)", len(data), len(plain.compress(data))
                )
                var = owner.get(oid)
                before = previous_var.get(var) if var else None
                if before is not None:
                    replaced.append(before[0])
                if before is None or before[1] + 1 >= chain:
                    delta, depth = len(plain.compress(data)), 0
                else:
                    prefixed = zstandard.ZstdCompressor(
                        level=3, dict_data=_raw_dict(before[0]), write_checksum=False
                    )
                    delta, depth = len(prefixed.compress(data)), before[1] + 1
                tally.add(
                    "large", f"delta vs previous version, full every {chain}", len(data), delta
                )
                if var:
                    previous_var[var] = (data, depth)
        if new_nodes:
            joined = b"".join(new_nodes)
            if previous_nodes:
                prefixed = zstandard.ZstdCompressor(
                    level=3, dict_data=_raw_dict(previous_nodes), write_checksum=False
                )
                packed = len(prefixed.compress(joined))
            else:
                packed = len(plain.compress(joined))
            tally.add(
                "trees",
                "one frame per commit, delta vs previous commit's nodes",
                len(joined),
                packed,
            )
        if new_all:
            # A per-commit pack: every new object in one frame, with what they replace
            # (the previous versions of the changed big variables, the previous commit's
            # tree nodes) as the dictionary. One row and one id-index entry per commit.
            base = b"".join([*replaced, previous_nodes])
            joined = b"".join(new_all)
            packer = (
                zstandard.ZstdCompressor(level=3, dict_data=_raw_dict(base), write_checksum=False)
                if base
                else plain
            )
            tally.add(
                "commit",
                "all new objects in one frame, delta vs what they replace",
                len(joined),
                len(packer.compress(joined)),
            )
        previous_nodes = nodes
    return {
        "profile": name,
        "commits": commits,
        "seconds": time.perf_counter() - started,
        "per_checkpoint": {
            k: {
                "raw": tally.raw[k] / commits,
                "stored": tally.out[k] / commits,
                "objects": tally.objects[k] / commits,
            }
            for k in sorted(tally.raw)
        },
    }


def _stored(compressor: zstandard.ZstdCompressor, data: bytes) -> int:
    """Bytes ckptstore stores today: raw under 48 bytes or when zstd does not shrink it."""
    if len(data) < 48:
        return len(data)
    return min(len(data), len(compressor.compress(data)))


def _small_with_dicts(
    tally: Tally,
    dicts: dict[int, zstandard.ZstdCompressor],
    training: list[bytes],
    batch: list[bytes],
) -> None:
    for size in _DICT_SIZES:
        if size not in dicts:
            trained = zstandard.train_dictionary(size, training)
            dicts[size] = zstandard.ZstdCompressor(
                level=3, dict_data=trained, write_checksum=False, write_dict_id=False
            )
        for data in batch:
            out = min(len(data), len(dicts[size].compress(data)))
            tally.add("small", _dict_label(size), len(data), out)


def _bytes(n: float) -> str:
    return f"{n / 1024:.2f} KiB" if n >= 1024 else f"{n:.0f} B"


def markdown(result: dict[str, Any]) -> str:
    """The prototype figures as a markdown table."""
    lines = [
        f"Prototype on profile `{result['profile']}`, session `main`: {result['commits']}"
        f" checkpoints ({result['seconds']:.0f} s).",
        "",
        "| objects: representation | new objects / ckpt | raw / ckpt | stored / ckpt | ratio |",
        "|---|---|---|---|---|",
    ]
    for key, v in result["per_checkpoint"].items():
        ratio = v["raw"] / v["stored"] if v["stored"] else 0
        lines.append(
            f"| {key} | {v['objects']:.2f} | {_bytes(v['raw'])} | {_bytes(v['stored'])} |"
            f" {ratio:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="short", choices=sorted(PROFILES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chain", type=int, default=64, help="longest delta chain")
    args = parser.parse_args(argv)
    print(markdown(measure(args.profile, quick=args.quick, seed=args.seed, chain=args.chain)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
