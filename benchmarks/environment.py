"""The machine and software a run happened on, read from the machine itself."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["describe"]


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "absent"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "absent"
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _source() -> str:
    """Which ckptstore was measured: its git commit (and whether the tree was dirty)."""
    import ckptstore

    here = Path(ckptstore.__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "ckptstore", "cli"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return done.stdout.strip() + (" + uncommitted changes" if dirty else "")
    try:  # installed from a directory: pip records it (PEP 610); a COMMIT file names it
        url = json.loads(metadata.distribution("ckptstore").read_text("direct_url.json") or "{}")
        marker = Path(url.get("url", "").removeprefix("file://")) / "COMMIT"
        return f"{marker.read_text().strip()} (installed, not editable)"
    except (OSError, ValueError, metadata.PackageNotFoundError):
        return "unknown"


def describe(workdir: Path) -> dict[str, str]:
    """CPU, cores, memory, OS, filesystem of ``workdir`` and the versions that matter."""
    return {
        "CPU": f"{_cpu()} ({os.cpu_count()} cores)",
        "memory": _memory(),
        "OS": f"{platform.system()} {platform.release()}",
        "filesystem": _filesystem(workdir),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "git": _first_line(["git", "--version"]).removeprefix("git version "),
        "zstd CLI": _first_line(["zstd", "-V"]).split(",")[0].strip("* "),
        "zstandard": _version("zstandard"),
        "langgraph-checkpoint-sqlite": _version("langgraph-checkpoint-sqlite"),
        "ckptstore": f"{_version('ckptstore')} at commit {_source()}",
    }
