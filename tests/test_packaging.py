"""The wheel built from this repository: exactly the library and the CLI, typed, with `ckpt`."""

from __future__ import annotations

import configparser
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel once for the module (without network when hatchling is installed)."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")
    result = subprocess.run(
        [*command, str(ROOT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def dist_info(wheel: Path) -> str:
    (info,) = {n.split("/")[0] for n in names(wheel) if n.split("/")[0].endswith(".dist-info")}
    return info


def read(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member).decode("utf-8")


@pytest.mark.slow
def test_wheel_holds_exactly_the_library_the_cli_and_its_metadata(wheel: Path) -> None:
    top = {name.split("/")[0] for name in names(wheel)}
    assert top == {"ckptstore", "ckpt_cli", dist_info(wheel)}
    assert dist_info(wheel).startswith("ckptstore-")
    for forbidden in ("cli", "tests", "benchmarks", "docs"):
        assert forbidden not in top


@pytest.mark.slow
def test_wheel_ships_the_modules_and_the_typed_marker(wheel: Path) -> None:
    members = set(names(wheel))
    assert "ckptstore/py.typed" in members
    for module in ("__init__", "__main__", "store", "errors", "objects", "trees"):
        assert f"ckptstore/{module}.py" in members
    assert "ckptstore/backends/sqlite.py" in members
    assert {"ckpt_cli/__init__.py", "ckpt_cli/__main__.py"} <= members
    assert not any(name.startswith("cli/") for name in members)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in members)
    assert not any("conftest" in name or "/test_" in name for name in members)


@pytest.mark.slow
def test_wheel_declares_the_ckpt_console_script(wheel: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(read(wheel, f"{dist_info(wheel)}/entry_points.txt"))
    assert dict(parser["console_scripts"]) == {"ckpt": "ckpt_cli:main"}


@pytest.mark.slow
def test_wheel_metadata_names_the_runtime_dependencies(wheel: Path) -> None:
    metadata = read(wheel, f"{dist_info(wheel)}/METADATA")
    requires = {
        match.group(0).lower()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
        if (match := re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip()))
    }
    assert {"msgpack", "zstandard", "blake3", "typer"} <= requires
    assert "Requires-Python: >=3.11" in metadata
