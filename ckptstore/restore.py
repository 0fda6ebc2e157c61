"""Restore: a checkpoint's variables as environment variables, and as shell text.

:func:`restore_env` maps each variable to an environment variable named
``<prefix><KEY>``: the key with ASCII letters upper-cased and every other character
outside ``A-Z 0-9 _`` replaced by ``_``, and ``_`` put first when the name would start
with a digit. Strings are kept as they are; every other value becomes its compact JSON
text (``true``, ``7``, ``{"a": 1}``), so a program can parse it back.

Two keys that sanitise to one name collide: a key that only needed upper-casing wins,
else the first in code-point order, and the others are reported, not exported. A value
that holds a NUL character cannot live in an environment, so it is reported and skipped.

:func:`render_env` writes the result for a shell (``export NAME='value'``, safe to
``eval`` in bash, sh, dash and zsh whatever the value holds), for a dotenv file (read
back exactly by python-dotenv without interpolation and by docker compose; a value
holding ``${...}`` is expanded by tools that interpolate), or as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from ckptstore.errors import InvalidOption

__all__ = ["ENV_FORMATS", "Collision", "Environment", "env_name", "render_env", "restore_env"]

ENV_FORMATS: Final = ("env", "dotenv", "json")
_PREFIX = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?")
_UNSAFE = re.compile(r"[^A-Z0-9_]")


class Collision(NamedTuple):
    """Variables whose keys map to one environment name; ``kept`` is the one exported."""

    name: str
    kept: str
    dropped: tuple[str, ...]


class Environment(NamedTuple):
    """Environment variables restored from a checkpoint."""

    values: dict[str, str]  # environment name -> value, sorted by name
    keys: dict[str, str]  # environment name -> the checkpoint variable it came from
    collisions: tuple[Collision, ...] = ()
    skipped: Mapping[str, str] = MappingProxyType({})  # variable -> why not exported

    def apply(self, environ: MutableMapping[str, str]) -> None:
        """Set the variables in ``environ`` (for instance ``os.environ``)."""
        environ.update(self.values)

    def warnings(self) -> list[str]:
        """One line per collision or skipped variable, for a user to read."""
        out = [
            f"variables {', '.join(repr(k) for k in (c.kept, *c.dropped))} all map to"
            f" {c.name}; exported {c.kept!r} only"
            for c in self.collisions
        ]
        out += [f"variable {key!r} not exported: {why}" for key, why in self.skipped.items()]
        return out


def env_name(key: str, prefix: str = "CKPT_") -> str:
    """The environment variable name of checkpoint variable ``key``."""
    # ASCII upper-casing only: "ß".upper() is "SS", and names should not grow letters.
    name = prefix + _UNSAFE.sub("_", "".join(c.upper() if c.isascii() else "_" for c in key))
    return "_" + name if not name or name[0].isdigit() else name


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def restore_env(checkpoint: Mapping[str, Any] | Any, prefix: str = "CKPT_") -> Environment:
    """The checkpoint's variables as environment variables (nothing is set; see ``apply``).

    Raises:
        InvalidOption: if ``prefix`` is not a valid start of an environment name.
    """
    if not _PREFIX.fullmatch(prefix):
        raise InvalidOption("prefix", prefix, "must be letters, digits and _, not first a digit")
    data = getattr(checkpoint, "data", checkpoint)  # a Store Checkpoint works too
    variables = data.get("variables") if isinstance(data, Mapping) else None
    variables = variables if isinstance(variables, Mapping) else {}
    claims: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for key in sorted(variables):
        if "\0" in _text(variables[key]):
            skipped[key] = "its value holds a NUL character, which no environment can hold"
            continue
        claims.setdefault(env_name(key, prefix), []).append(key)
    values: dict[str, str] = {}
    keys: dict[str, str] = {}
    collisions = []
    for name in sorted(claims):
        candidates = claims[name]
        exact = [k for k in candidates if prefix + k.upper() == name]
        kept = exact[0] if exact else candidates[0]
        if len(candidates) > 1:
            collisions.append(Collision(name, kept, tuple(k for k in candidates if k != kept)))
        values[name] = _text(variables[kept])
        keys[name] = kept
    return Environment(values, keys, tuple(collisions), skipped)


def _shell_quote(value: str) -> str:
    # Inside single quotes every shell takes every character literally, newlines, $, `
    # and \ included; a single quote itself is closed, escaped and reopened.
    return "'" + value.replace("'", "'\\''") + "'"


_DOTENV_PLAIN = re.compile(r"[^'\\\x00-\x1f\x7f]*")
_DOTENV_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _dotenv_quote(value: str) -> str:
    # Single quotes where the value allows (no quote, backslash or control character);
    # else double quotes with the escapes python-dotenv and docker compose both decode.
    if _DOTENV_PLAIN.fullmatch(value):
        return "'" + value + "'"
    return '"' + "".join(_DOTENV_ESCAPES.get(c, c) for c in value) + '"'


def render_env(env: Environment, fmt: str = "env") -> str:
    """The variables as text: ``env`` (shell ``export`` lines), ``dotenv`` or ``json``.

    Raises:
        InvalidOption: for any other format.
    """
    if fmt == "env":
        return "".join(f"export {n}={_shell_quote(v)}\n" for n, v in env.values.items())
    if fmt == "dotenv":
        return "".join(f"{n}={_dotenv_quote(v)}\n" for n, v in env.values.items())
    if fmt == "json":
        return json.dumps(env.values, ensure_ascii=False, indent=2) + "\n"
    raise InvalidOption("format", fmt, f"must be one of {', '.join(ENV_FORMATS)}")
