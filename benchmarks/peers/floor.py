"""The floor: the whole history as JSON lines through ``zstd -19 --long=27``.

No random access and no per-checkpoint durability: the size a store can only approach.
Uses the zstd CLI when it is installed, else python-zstandard with the same parameters
(level 19, 128 MiB window, long-distance matching); ``finish`` says which.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import zstandard

from .base import Peer, Sizes, dir_sizes

__all__ = ["FloorPeer"]


class FloorPeer(Peer):
    """Appends each checkpoint as one compact JSON line; compresses the file at the end."""

    name = "floor"
    durability = "none (one compressed file at the end)"
    rewrites = frozenset()
    timed = False

    def __init__(self) -> None:
        self.dir = Path()
        self.fh: Any = None
        self.lines = 0
        self.compressed = Path()

    def open(self, root: Path) -> None:
        self.dir = root / "floor"
        self.dir.mkdir(parents=True)
        self.fh = open(self.dir / "history.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def commit(self, staged: Any) -> Any:
        state, _session = staged
        self.fh.write(json.dumps(state, separators=(",", ":")) + "\n")
        self.lines += 1
        return self.lines - 1

    def sizes(self) -> Sizes:
        if self.compressed.name and self.compressed.exists():
            return dir_sizes(self.compressed)
        return Sizes(0, 0)

    def finish(self) -> dict[str, Any]:
        self.fh.close()
        source = self.dir / "history.jsonl"
        self.compressed = self.dir / "history.jsonl.zst"
        start = time.perf_counter()
        if shutil.which("zstd"):
            subprocess.run(
                ["zstd", "-19", "--long=27", "-q", "-f", str(source), "-o", str(self.compressed)],
                check=True,
            )
            how = "zstd CLI: zstd -19 --long=27"
        else:
            params = zstandard.ZstdCompressionParameters.from_level(
                19, window_log=27, enable_ldm=True
            )
            with open(source, "rb") as src, open(self.compressed, "wb") as dst:
                zstandard.ZstdCompressor(compression_params=params).copy_stream(src, dst)
            how = "python-zstandard: level 19, window_log=27, enable_ldm=True"
        seconds = time.perf_counter() - start
        raw = source.stat().st_size
        source.unlink()
        return {"how": how, "seconds": seconds, "jsonl_bytes": raw}

    def iter_back(self) -> Any:
        """Decompress the history and yield each checkpoint (verifies the floor's bytes)."""
        params = {"max_window_size": 1 << 27}
        reader = zstandard.ZstdDecompressor(**params)
        with open(self.compressed, "rb") as fh, reader.stream_reader(fh) as stream:
            buffered = io.TextIOWrapper(stream, encoding="utf-8")
            for line in buffered:
                yield json.loads(line)

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()
