"""The store's config file: ``<store dir>/config.toml``, read with ``tomllib``.

Sections this module reads (every one optional)::

    [secrets]
    patterns = ["*_DSN", "VAULT_*"]     # more variable-name patterns that are secret
    defaults = true                      # keep the built-in patterns (default: true)

    [summary.task_types.deploy]         # a task type for `ckpt summary --for deploy`
    dependency_types = ["service", "cache"]
    variables = ["*_ENV", "region", "deploy_*"]
    aliases = ["release"]                # more names for --for (optional)

    [[dependencies]]                    # a service `ckpt commit` checks (ckpt deps)
    name = "vault"
    check = "http"                       # tcp | http | command
    endpoint = "https://127.0.0.1:8200/v1/sys/health"
    type = "service"                     # recorded as the dependency's type (default)
    timeout = 0.5                        # seconds (default: the probe phase's bound)
    verify_tls = false                   # http: accept a self-signed certificate
    # check = "command": command = ["redis-cli", "PING"], endpoint optional,
    # degraded_exit_codes = [2] (exit statuses that mean degraded, not unavailable)

    [probes]
    bound = 2.0                          # seconds the whole probe phase may take

    [gc]                                 # ckpt gc and ckpt prune (their flags override)
    grace = "1h"                         # never delete objects stored more recently
    reflog_expiry = "90d"                # older reflog entries stop keeping checkpoints

    [serve]                             # ckpt serve (the resident commit server)
    auto = true                          # a commit that finds none starts one (default: false)
    idle = "30m"                         # it stops after this long without a request

    [collectors]
    on_error = "record"                  # a failing collector: "record" it or "fail"
    plugins = true                       # run the ckptstore.collectors entry points
    disable = ["git"]                    # plugin collectors not to run

A new section adds its name to ``SECTIONS``, a field to :class:`Config` and a parser
built on :class:`Table`, which turns every mistake into an
:class:`~ckptstore.errors.InvalidConfig` naming the file, the line when it can be
found, and the key. Unknown sections and keys are errors, so a typo never silently
does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn

from ckptstore.errors import InvalidConfig, InvalidOption
from ckptstore.secrets import DEFAULT_PATTERNS

if TYPE_CHECKING:
    from ckptstore.probes import DependencySpec
    from ckptstore.summary import TaskProfile

# What reads a section (probes, retention, summary, tomllib) is imported when the file
# has that section: every `ckpt commit` reads the config, and a store without one must
# not pay for the modules.

__all__ = ["CONFIG_FILE", "SECTIONS", "Config", "Table", "load_config", "parse_config"]

CONFIG_FILE: Final = "config.toml"
SECTIONS: Final = ("secrets", "summary", "dependencies", "probes", "gc", "collectors", "serve")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_ITEM = re.compile(r"(.+)\[(\d+)\]")
MAX_BOUND: Final = 60.0
DEFAULT_BOUND: Final = 2.0
"""Seconds the dependency checks may take together (``probes.DEFAULT_BOUND``, tested equal)."""
ON_ERROR: Final = ("record", "fail")


class Config(NamedTuple):
    """A store's configuration (the defaults where the file says nothing)."""

    path: str | None = None
    secret_patterns: tuple[str, ...] = DEFAULT_PATTERNS
    configured_task_types: Mapping[str, TaskProfile] | None = None
    """The task types of ``[summary.task_types]`` with the built-ins; None: built-ins only."""
    dependencies: tuple[DependencySpec, ...] = ()
    probe_bound: float = DEFAULT_BOUND
    collector_errors: str = "record"
    plugins: bool = True
    disabled_collectors: tuple[str, ...] = ()
    gc_grace: float | None = None
    """Seconds; ``None``: the built-in default of :mod:`ckptstore.gc`."""
    gc_reflog_expiry: float | None = None
    serve_auto: bool = False
    """Whether a ``ckpt commit`` that finds no ``ckpt serve`` running starts one."""
    serve_idle: float | None = None
    """Seconds ``ckpt serve`` waits for a request before it stops; None: its default."""

    @property
    def task_types(self) -> Mapping[str, TaskProfile]:
        """Every task type of ``ckpt summary --for``: the built-ins and the configured."""
        if self.configured_task_types is not None:
            return self.configured_task_types
        from ckptstore.summary import BUILTIN_TASK_TYPES

        return dict(BUILTIN_TASK_TYPES)


class Table:
    """One TOML table being parsed: typed reads that fail with the key and line named."""

    def __init__(self, value: Any, where: tuple[str, ...], text: str, source: str) -> None:
        self.where = where
        self.text = text
        self.source = source
        if not isinstance(value, dict):
            self.fail(where, f"must be a table, not {_kind(value)}")
        self.value: dict[str, Any] = value
        self._seen: set[str] = set()

    def fail(self, where: tuple[str, ...], problem: str) -> NoReturn:
        """Raise an :class:`InvalidConfig` for the key at ``where``."""
        raise InvalidConfig(self.source, ".".join(where), problem, _line_of(self.text, where))

    def table(self, key: str) -> Table | None:
        """The sub-table ``key``, or None when absent."""
        self._seen.add(key)
        if key not in self.value:
            return None
        return Table(self.value[key], (*self.where, key), self.text, self.source)

    def strings(self, key: str) -> tuple[str, ...] | None:
        """The list of strings ``key``, or None when absent."""
        self._seen.add(key)
        if key not in self.value:
            return None
        value = self.value[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail((*self.where, key), f"must be a list of strings, not {_kind(value)}")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        """The boolean ``key``, or ``default`` when absent."""
        self._seen.add(key)
        value = self.value.get(key, default)
        if not isinstance(value, bool):
            self.fail((*self.where, key), f"must be true or false, not {_kind(value)}")
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        """The string ``key``, or ``default`` when absent."""
        self._seen.add(key)
        if key not in self.value:
            return default
        value = self.value[key]
        if not isinstance(value, str):
            self.fail((*self.where, key), f"must be a string, not {_kind(value)}")
        return value

    def number(self, key: str, default: float | None, low: float, high: float) -> float | None:
        """The number ``key`` (above ``low``, at most ``high``), or ``default``."""
        self._seen.add(key)
        if key not in self.value:
            return default
        value = self.value[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail((*self.where, key), f"must be a number, not {_kind(value)}")
        if not low < value <= high:
            self.fail((*self.where, key), f"must be more than {low:g} and at most {high:g}")
        return float(value)

    def duration(self, key: str) -> float | None:
        """The duration ``key`` (``90s``, ``1h``, ``7d``, ``0s``) in seconds, or None."""
        text = self.string(key)
        if text is None:
            return None
        from ckptstore.retention import parse_duration

        try:
            return parse_duration(text, option=key).total_seconds()
        except InvalidOption as err:
            self.fail((*self.where, key), f"{text!r} is {err.problem}")

    def integers(self, key: str) -> tuple[int, ...]:
        """The list of integers ``key`` (empty when absent)."""
        self._seen.add(key)
        value = self.value.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.fail((*self.where, key), f"must be a list of integers, not {_kind(value)}")
        return tuple(value)

    def items(self, key: str) -> list[Table]:
        """The array of tables ``key`` (``[[key]]``), each named ``key[i]``."""
        self._seen.add(key)
        value = self.value.get(key, [])
        if not isinstance(value, list):
            self.fail(
                (*self.where, key), f"must be an array of tables ([[{key}]]), not {_kind(value)}"
            )
        return [
            Table(item, (*self.where, f"{key}[{i}]"), self.text, self.source)
            for i, item in enumerate(value)
        ]

    def done(self) -> None:
        """Fail on the first key nobody read (a typo, or a setting this version lacks)."""
        for key in self.value:
            if key not in self._seen:
                self.fail((*self.where, key), "is not a known setting")


def _kind(value: Any) -> str:
    names = {
        dict: "a table", list: "an array", str: "a string", bool: "a boolean",
        int: "an integer", float: "a number",
    }  # fmt: skip
    return names.get(type(value), f"a {type(value).__name__}")


def _line_of(text: str, where: tuple[str, ...]) -> int | None:
    """The line where the key at ``where`` is set, when a plain reading finds it."""
    lines = text.splitlines()
    item = _ITEM.fullmatch(where[0]) if where else None
    if item is not None:
        return _line_in_item(lines, item.group(1), int(item.group(2)), where[1:])
    for depth in range(len(where), 0, -1):
        header = re.compile(r"^\s*\[{1,2}\s*" + r"\s*\.\s*".join(map(re.escape, where[:depth])))
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if start is None:
            continue
        if depth == len(where):
            return start + 1
        key = re.compile(r"^\s*" + re.escape(where[depth]) + r"\s*=")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
        return start + 1
    key = re.compile(r"^\s*" + re.escape(where[0]) + r"\s*[=.]")
    return next((i + 1 for i, line in enumerate(lines) if key.match(line)), None)


def _line_in_item(lines: list[str], name: str, index: int, keys: tuple[str, ...]) -> int | None:
    """The line of ``keys[0]`` in the ``index``-th ``[[name]]`` table (or its header)."""
    header = re.compile(r"^\s*\[\[\s*" + re.escape(name) + r"\s*\]\]")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if index >= len(starts):
        return None
    start = starts[index]
    if keys:
        key = re.compile(r"^\s*" + re.escape(keys[0]) + r"\s*=")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
    return start + 1


def _dependency(entry: Table, default_timeout: float | None) -> DependencySpec:
    from ckptstore.probes import CHECKS, DependencySpec, endpoint_problem

    name = entry.string("name")
    if name is None:
        entry.fail((*entry.where, "name"), "is missing; every dependency needs a name")
    check = entry.string("check")
    if check is None:
        entry.fail((*entry.where, "check"), f"is missing; give one of {', '.join(CHECKS)}")
    if check not in CHECKS:
        entry.fail(
            (*entry.where, "check"), f"{check!r} is not a known check; use {', '.join(CHECKS)}"
        )
    endpoint = entry.string("endpoint")
    command = entry.strings("command") or ()
    if check == "command":
        if not command or not command[0]:
            entry.fail(
                (*entry.where, "command"),
                'is missing; a command check runs a program: command = ["prog", "arg"]',
            )
    elif command:
        entry.fail((*entry.where, "command"), f'is only for check = "command", not {check!r}')
    elif endpoint is None:
        entry.fail((*entry.where, "endpoint"), f"is missing; a {check} check needs an endpoint")
    if endpoint is not None and (problem := endpoint_problem(check, endpoint)) is not None:
        entry.fail((*entry.where, "endpoint"), f"{endpoint!r} {problem}")
    spec = DependencySpec(
        name=name,
        check=check,
        endpoint=endpoint,
        type=entry.string("type", "service") or "service",
        timeout=entry.number("timeout", default_timeout, 0, MAX_BOUND),
        command=command,
        verify_tls=entry.boolean("verify_tls", True),
        degraded_exit_codes=entry.integers("degraded_exit_codes"),
    )
    entry.done()
    return spec


def _dependencies(root: Table, default_timeout: float | None) -> tuple[DependencySpec, ...]:
    specs: list[DependencySpec] = []
    for entry in root.items("dependencies"):
        spec = _dependency(entry, default_timeout)
        if any(other.name == spec.name for other in specs):
            entry.fail((*entry.where, "name"), f"{spec.name!r} is declared twice")
        specs.append(spec)
    return tuple(specs)


def _task_types(summary: Table) -> dict[str, TaskProfile]:
    from ckptstore.summary import BUILTIN_TASK_TYPES, TaskProfile

    profiles = dict(BUILTIN_TASK_TYPES)
    types = summary.table("task_types")
    if types is None:
        return profiles
    for name in types.value:
        entry = types.table(name)
        assert entry is not None
        if not _NAME.fullmatch(name):
            entry.fail(entry.where, "a task type name uses letters, digits and - _ . only")
        aliases = entry.strings("aliases") or ()
        profile = TaskProfile(
            name=name,
            dependency_types=entry.strings("dependency_types") or (),
            variables=entry.strings("variables") or (),
            description=f"defined in {summary.source}",
        )
        entry.done()
        for key in (name, *aliases):
            profiles[key] = profile
    types.done()
    return profiles


def parse_config(text: str, *, source: str = CONFIG_FILE) -> Config:
    """Parse the text of a config file.

    Raises:
        InvalidConfig: naming the line and key of the first mistake.
    """
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = re.search(r"at line (\d+)", str(err))
        line = int(found.group(1)) if found else None
        raise InvalidConfig(source, "", f"not valid TOML ({err})", line) from None
    root = Table(data, (), text, source)
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    secrets = root.table("secrets")
    if secrets is not None:
        extra = secrets.strings("patterns") or ()
        patterns = (*DEFAULT_PATTERNS, *extra) if secrets.boolean("defaults", True) else extra
        secrets.done()
    task_types = None
    summary = root.table("summary")
    if summary is not None:
        task_types = _task_types(summary)
        summary.done()
    bound, timeout = DEFAULT_BOUND, None
    probes = root.table("probes")
    if probes is not None:
        bound = probes.number("bound", DEFAULT_BOUND, 0, MAX_BOUND) or DEFAULT_BOUND
        timeout = probes.number("timeout", None, 0, MAX_BOUND)
        probes.done()
    dependencies = _dependencies(root, timeout)
    on_error, plugins, disabled = "record", True, tuple[str, ...]()
    collectors = root.table("collectors")
    if collectors is not None:
        on_error = collectors.string("on_error", "record") or "record"
        if on_error not in ON_ERROR:
            collectors.fail(
                (*collectors.where, "on_error"), f'{on_error!r} must be "record" or "fail"'
            )
        plugins = collectors.boolean("plugins", True)
        disabled = collectors.strings("disable") or ()
        collectors.done()
    grace = expiry = None
    gc = root.table("gc")
    if gc is not None:
        grace, expiry = gc.duration("grace"), gc.duration("reflog_expiry")
        gc.done()
    auto, idle = False, None
    serve = root.table("serve")
    if serve is not None:
        auto, idle = serve.boolean("auto", False), serve.duration("idle")
        if idle == 0:
            serve.fail((*serve.where, "idle"), "must be longer than 0s")
        serve.done()
    root.done()
    return Config(
        source, patterns, task_types, dependencies, bound, on_error, plugins, disabled,
        grace, expiry, auto, idle,
    )  # fmt: skip


def load_config(directory: str | Path | None) -> Config:
    """The config of the store in ``directory`` (defaults without a file or directory).

    Raises:
        InvalidConfig: if the file cannot be read or is not valid.
    """
    if directory is None:
        return Config()
    path = Path(directory) / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as err:
        raise InvalidConfig(str(path), "", f"cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidConfig(str(path), "", "is not UTF-8", line) from None
    return parse_config(text, source=str(path))
