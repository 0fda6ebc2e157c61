"""House-style layering, checked on the source: imports point down only, the library is lean.

::

    ckpt_cli → demo → store → snapshot / commits / revisions / diff / treediff / history
             → objectstore / refs / trees / paths
             → objects / compression / backends (and location, tokens) → errors

``demo`` drives the Store facade like any other client, so it sits above it.

Nothing in ``ckptstore/`` imports the CLI or its UI libraries, except the
``python -m ckptstore`` entry point (``ckptstore/__main__.py``), which hands over to it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ckptstore"
ENTRY_POINT = "ckptstore.__main__"
UI_PACKAGES = frozenset({"typer", "click", "rich", "ckpt_cli", "cli", "shellingham"})
OPTIONAL_FRAMEWORKS = frozenset({"langgraph", "langchain_core"})

# Layer of each first-level component of ckptstore (higher may import lower, not upwards).
LAYERS: dict[str, int] = {
    "errors": 0,
    "objects": 1,
    "decoding": 1,  # stored bytes back into values, screened
    "commit_object": 1,  # the commit object's encoding
    "compression": 1,
    "backends": 1,
    "location": 1,
    "tokens": 1,
    "json_text": 1,  # strict JSON text (the CLI's inputs and imported files)
    "objectstore": 2,
    "refs": 2,
    "trees": 2,
    "tree_build": 2,  # maps and lists into tree nodes, assembled from entries' bytes
    "records": 2,  # a state's records checked and encoded once per process (a memo)
    "paths": 2,  # reads values out of trees
    "roots": 2,  # the shape a checkpoint's root tree must have
    "snapshot": 3,
    "validation": 3,  # a state checked against the format and made ready to write
    "commits": 3,
    "publish": 3,  # a commit's objects and ref move in one write, retried on a lost race
    "revisions": 3,
    "secrets": 3,  # pure: which variables are secret; checkpoints and changes redacted
    "summary": 3,  # pure: checkpoint dict -> budgeted text
    "restore": 3,  # pure: checkpoint dict -> environment
    "config": 3,  # reads <store dir>/config.toml; builds summary task types
    "checkpoint_files": 3,  # the original files found, read and checked (for interchange)
    "diff": 3,  # pure: changes between states
    "treediff": 3,  # the same changes, from a walk over two trees
    "listdiff": 3,  # treediff's list sections
    "treewalk": 3,  # two trees walked where they differ (treediff and deltas share it)
    "deltas": 3,  # which old object each new one replaces (for delta compression)
    "token_delta": 3,  # a commit's token estimate from its parent's and what changed
    "dictionary": 2,  # the store's trained zstd dictionary
    "history": 3,
    "retention": 1,  # pure: which checkpoints a retention policy keeps
    "event_commits": 1,  # pure: the LangGraph saver's session names and event notes
    "graph": 3,  # which objects an object references
    "gc": 3,
    "prune": 3,  # retention applied to sessions, then gc
    "fsck": 3,
    "stats": 3,
    "edits": 3,  # pure: flag edits applied to a state
    "merge": 3,  # pure: partial states merged into a state
    "probes": 3,  # dependency checks (sockets, HTTP, commands); config declares them
    "collectors": 3,  # the capture pipeline; the Store hands it the inherited state
    "session": 3,  # auto-checkpoint hooks over anything with Store.capture's shape
    "store": 4,
    "store_parts": 4,  # what the facade's mixins use of it (declarations only)
    "store_capture": 4,  # the facade's capture (ckpt commit's collectors) and hooks
    "store_history": 4,  # the facade's history methods (Store mixes them in)
    "store_refs": 4,  # the facade's sessions and tags
    "store_maintenance": 4,  # the facade's gc, prune, fsck, stats
    "demo": 5,  # a client of the facade, like the CLI
    "manager": 5,  # the seed's CheckpointManager: a client of the facade
    "interchange": 5,  # import/export of the original files, through the facade
    "integrations": 5,  # other frameworks' persistence interfaces over the facade (optional)
    "__init__": 6,  # the package root re-exports the public API
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (absolute)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(path: Path) -> list[Import]:
    """Every import statement in a file (function-level and TYPE_CHECKING ones too)."""
    name = module_name(path)
    package = name.removesuffix(".__init__") if is_package(path) else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            found.append(Import(name, stem, node.lineno))
            # `from ckptstore import store` imports the submodule itself.
            for alias in node.names:
                candidate = PACKAGE.parent.joinpath(*stem.split("."), alias.name)
                if candidate.with_suffix(".py").is_file() or candidate.is_dir():
                    found.append(Import(name, f"{stem}.{alias.name}", node.lineno))
    return found


def component(dotted: str) -> str | None:
    """The first-level component of a ckptstore module (``None`` outside ckptstore)."""
    parts = dotted.split(".")
    if parts[0] != "ckptstore":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def library_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


ALL_IMPORTS = [imp for path in library_files() for imp in imports_of(path)]


def test_the_package_is_found_and_parsed() -> None:
    names = {module_name(p) for p in library_files()}
    assert {"ckptstore.store", "ckptstore.errors", "ckptstore.backends.sqlite"} <= names
    assert any(imp.target == "ckptstore.errors" for imp in ALL_IMPORTS)


def test_every_module_has_a_layer() -> None:
    unknown = sorted(
        {c for p in library_files() if (c := component(module_name(p))) not in LAYERS}
        - {"__main__"}
    )
    assert unknown == [], f"give these modules a layer in tests/test_layering.py: {unknown}"


def test_the_library_never_imports_the_cli_or_ui_packages() -> None:
    offending = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if imp.target.split(".")[0] in UI_PACKAGES and imp.module != ENTRY_POINT
    ]
    assert offending == []


def test_only_the_integrations_import_their_frameworks() -> None:
    # The frameworks are optional extras: the core package must import without them.
    offending = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if imp.target.split(".")[0] in OPTIONAL_FRAMEWORKS
        and component(imp.module) != "integrations"
    ]
    assert offending == []


def test_the_entry_point_only_hands_over_to_the_cli() -> None:
    targets = {imp.target for imp in ALL_IMPORTS if imp.module == ENTRY_POINT}
    assert targets == {"ckpt_cli"}


@pytest.mark.parametrize("layer", sorted(set(LAYERS.values())))
def test_imports_point_down_only(layer: int) -> None:
    offending = []
    for imp in ALL_IMPORTS:
        source, target = component(imp.module), component(imp.target)
        if source is None or target is None or source == target:
            continue
        if LAYERS.get(source) != layer or target not in LAYERS:
            continue
        if LAYERS[target] > layer:
            offending.append(
                f"{imp.module}:{imp.line} ({source}, layer {layer}) imports {imp.target}"
                f" ({target}, layer {LAYERS[target]})"
            )
    assert offending == [], "\n".join(offending)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        (("objects", "compression", "backends", "errors"), ("objectstore", "trees", "snapshot")),
        (("objects", "compression", "backends", "errors"), ("store", "refs", "commits")),
        (("objectstore", "refs", "trees"), ("snapshot", "store", "revisions", "commits", "demo")),
        (("snapshot", "commits", "revisions"), ("store", "demo")),
        (("store",), ("demo",)),
    ],
)
def test_named_lower_layers_never_import_named_higher_ones(
    lower: tuple[str, ...], higher: tuple[str, ...]
) -> None:
    offending = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if component(imp.module) in lower and component(imp.target) in higher
    ]
    assert offending == [], "\n".join(offending)


def test_the_backends_import_nothing_above_errors() -> None:
    allowed = {"backends", "errors"}
    offending = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if component(imp.module) == "backends"
        and (target := component(imp.target)) is not None
        and target not in allowed
    ]
    assert offending == []


def imported_modules(code: str) -> set[str]:
    """Modules a fresh interpreter holds after running ``code``."""
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent.parent,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "code",
    ["import ckptstore", "from ckptstore import Store; Store.memory().commit()"],
)
def test_importing_the_library_loads_no_ui_package(code: str) -> None:
    modules = imported_modules(code)
    assert "ckptstore" in modules
    if "Store" in code:
        assert {"ckptstore.store", "ckptstore.backends.sqlite"} <= modules
    else:  # the package loads its parts when they are first used
        assert "ckptstore.store" not in modules
    ui = sorted(m for m in modules if m.split(".")[0] in UI_PACKAGES)
    assert ui == [], f"`{code}` imports {ui}"
