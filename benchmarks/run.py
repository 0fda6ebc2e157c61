"""Run ckptstore and its peers side by side on one workload profile; print markdown.

    python benchmarks/run.py --profile long            # ~10,000 checkpoints
    python benchmarks/run.py --profile short --quick   # the CI-sized variant

Peers that cannot run here (LangGraph not installed, no git) are skipped with a note.
Needs the ``bench`` extra for LangGraph's SqliteSaver: ``pip install -e '.[bench]'``.
Every load is compared with what was committed; a mismatch exits 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from environment import describe
from measure import Mismatch, Options, Result, run
from peers import FACTORIES
from report import markdown
from startup import markdown as startup_markdown
from workload import PROFILES, profile

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="short", choices=sorted(PROFILES))
    parser.add_argument("--quick", action="store_true", help="small CI-sized variant")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--peers", default=",".join(FACTORIES), help="comma-separated (default: all)"
    )
    parser.add_argument("--load-samples", type=int, help="random loads per milestone")
    parser.add_argument("--cli-samples", type=int, help="checkpoints committed via `ckpt`")
    parser.add_argument("--startup-samples", type=int, help="CLI start-up probes (0: none)")
    parser.add_argument(
        "--twin-history", type=int, default=100, help="checkpoints in the short twin store"
    )
    parser.add_argument("--no-verify-all", action="store_true", help="skip loading every one")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--markdown", type=Path, help="also write the markdown here")
    return parser


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def render(result: Result, machine: dict[str, str] | None) -> str:
    """The full markdown report of a run."""
    text = markdown(result, machine)
    if result.startup:
        text += "\n\n#### CLI start-up\n\n" + startup_markdown(result.startup)
    return text


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prof = profile(args.profile, quick=args.quick)
    small = args.quick or args.profile == "tiny"
    options = Options(
        peers=[p.strip() for p in args.peers.split(",") if p.strip()],
        seed=args.seed,
        load_samples=args.load_samples or (20 if small else 200),
        diff_samples=10 if small else 50,
        cli_samples=args.cli_samples if args.cli_samples is not None else (5 if small else 40),
        verify_all=not args.no_verify_all,
        twin_history=args.twin_history,
        workdir=args.workdir,
        progress=not small,
        startup_samples=(
            args.startup_samples if args.startup_samples is not None else (2 if small else 15)
        ),
    )
    unknown = [p for p in options.peers if p not in FACTORIES]
    if unknown:
        print(
            f"error: unknown peer {unknown[0]!r}; choose from {', '.join(FACTORIES)}",
            file=sys.stderr,
        )
        return 2
    try:
        result = run(prof, options)
    except Mismatch as err:
        print(f"error: load mismatch: {err}", file=sys.stderr)
        return 1
    machine = describe(result.root)
    text = render(result, machine)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.json:
        raw = {"machine": machine, "result": _jsonable(result)}
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    if not args.keep:
        shutil.rmtree(result.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
