"""Secrets: which variables hold credentials, and checkpoints with their values hidden.

A variable is secret when its name matches one of the store's patterns (shell-style,
case-insensitive; :data:`DEFAULT_PATTERNS` unless the config says otherwise) or was
marked secret by name (``ckpt commit --secret-var KEY VALUE``). Secret values are
stored like any other value and restored by ``ckpt restore``; every command that shows
a checkpoint shows ``[redacted]`` in their place unless given ``--reveal``.

:func:`redact` also masks each secret string value (of :data:`MIN_MASKED` characters or
more) wherever it occurs inside other strings of the checkpoint: a token copied into an
output or a task subject is hidden too.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ckptstore.errors import MalformedData

if TYPE_CHECKING:
    from ckptstore.diff import Change

__all__ = [
    "DEFAULT_PATTERNS",
    "MIN_MASKED",
    "REDACTED",
    "SECRET_SETTING",
    "SecretPolicy",
    "dump_marked",
    "mask_text",
    "mask_value",
    "parse_marked",
    "redact",
    "redact_changes",
    "redact_path_value",
    "secret_needles",
]

REDACTED: Final = "[redacted]"
SECRET_SETTING: Final = "secret_variables"
"""The store setting holding the names marked secret (a JSON array)."""
MIN_MASKED: Final = 6
"""Secret strings shorter than this are hidden as values but not searched for in text."""

# Not a bare "*_KEY": it would hide the original skill's own example variable
# ("custom_key") and every cache_key, sort_key or primary_key; add it in config.toml
# ([secrets] patterns = ["*_KEY"]) where a store wants it.
DEFAULT_PATTERNS: Final = (
    "*_TOKEN",
    "*_PASSWORD",
    "*_PASSWD",
    "*_SECRET",
    "*API_KEY*",
    "*SECRET_KEY*",
    "*PRIVATE_KEY*",
    "*ACCESS_KEY*",
    "*SIGNING_KEY*",
    "*ENCRYPTION_KEY*",
    "*_CREDENTIALS",
    "TOKEN",
    "PASSWORD",
    "SECRET",
)


class SecretPolicy(NamedTuple):
    """Which variable names are secret: name patterns plus names marked one by one."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    marked: frozenset[str] = frozenset()

    def is_secret(self, name: str) -> bool:
        """Whether the variable ``name`` is secret."""
        if name in self.marked:
            return True
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in self.patterns)

    def secret_names(self, variables: Iterable[str]) -> list[str]:
        """The secret names among ``variables``, in their order."""
        return [name for name in variables if self.is_secret(name)]

    def with_marked(self, names: Iterable[str]) -> SecretPolicy:
        """This policy with ``names`` marked secret too."""
        return SecretPolicy(self.patterns, self.marked | frozenset(names))


def parse_marked(text: str | None) -> frozenset[str]:
    """The names in a stored list of marked names (a JSON array of strings).

    Raises:
        MalformedData: if the list is damaged (never read as empty: that would reveal
            every marked secret).
    """
    if not text:
        return frozenset()
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MalformedData("list of secret variables", f"not a JSON array of names: {text!r}")
    return frozenset(names)


def dump_marked(names: Iterable[str]) -> str:
    """The stored form of a set of marked names."""
    return json.dumps(sorted(set(names)), ensure_ascii=False)


def secret_needles(
    variable_maps: Iterable[Mapping[str, Any]], policy: SecretPolicy
) -> tuple[str, ...]:
    """The secret string values (of :data:`MIN_MASKED` characters or more) to hide in text.

    Longest first, so a secret that contains another is masked whole.
    """
    found = {
        value
        for variables in variable_maps
        for name, value in variables.items()
        if isinstance(value, str) and len(value) >= MIN_MASKED and policy.is_secret(name)
    }
    return tuple(sorted(found, key=lambda text: (-len(text), text)))


def mask_value(value: Any, needles: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of a needle inside its strings replaced."""
    if not needles:
        return value
    if isinstance(value, str):
        for needle in needles:
            if needle in value:
                value = value.replace(needle, REDACTED)
        return value
    if isinstance(value, list):
        return [mask_value(item, needles) for item in value]
    if isinstance(value, dict):
        return {key: mask_value(item, needles) for key, item in value.items()}
    return value


def redact(checkpoint: Mapping[str, Any], policy: SecretPolicy) -> dict[str, Any]:
    """A copy of ``checkpoint`` with every secret hidden.

    Secret variables' values become ``"[redacted]"``; each secret string value of
    :data:`MIN_MASKED` characters or more is replaced by ``[redacted]`` wherever else it
    occurs in a string value (tasks, outputs, other variables, unknown fields).
    The input is not changed.
    """
    variables = checkpoint.get("variables")
    if not isinstance(variables, Mapping) or not policy.secret_names(variables):
        return dict(checkpoint)
    needles = secret_needles([variables], policy)
    out = {
        name: value if name == "variables" else mask_value(value, needles)
        for name, value in checkpoint.items()
    }
    out["variables"] = {
        key: REDACTED if policy.is_secret(key) else mask_value(value, needles)
        for key, value in variables.items()
    }
    return out


def mask_text(text: str, checkpoint: Mapping[str, Any], policy: SecretPolicy) -> str:
    """``text`` with the checkpoint's secret string values masked (notes, messages)."""
    variables = checkpoint.get("variables")
    if not isinstance(variables, Mapping):
        return text
    result = mask_value(text, secret_needles([variables], policy))
    return result if isinstance(result, str) else text


def redact_changes(
    changes: Sequence[Change], policy: SecretPolicy, current: Mapping[str, Any]
) -> list[Change]:
    """Changes (a diff, a value's history) with every secret hidden, old values included.

    ``current`` is the variables of the checkpoint being shown: its secret values are
    masked in every change, as are the secret values the changes themselves carry.
    """
    seen: list[Mapping[str, Any]] = [current]
    for change in changes:
        if change.section == "variables" and change.key is not None:
            seen.append({change.key: change.old})
            seen.append({change.key: change.new})
        elif change.section == "variables":
            seen += [side for side in (change.old, change.new) if isinstance(side, Mapping)]
    needles = secret_needles(seen, policy)

    def hide(value: Any, key: str | None) -> Any:
        if key is not None:
            return REDACTED if policy.is_secret(key) else mask_value(value, needles)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if policy.is_secret(k) else mask_value(v, needles)
                for k, v in value.items()
            }
        return mask_value(value, needles)

    out = []
    for change in changes:
        if change.section == "variables":
            old, new = hide(change.old, change.key), hide(change.new, change.key)
        else:
            old, new = mask_value(change.old, needles), mask_value(change.new, needles)
        out.append(change._replace(old=old, new=new))
    return out


def redact_path_value(
    path: Sequence[str], value: Any, variables: Mapping[str, Any], policy: SecretPolicy
) -> Any:
    """One value of a checkpoint (``ckpt load REF:PATH``) with secrets hidden.

    ``path`` is the parsed path; ``variables`` the checkpoint's variables.
    """
    if path and path[0] == "variables":
        if len(path) == 1 and isinstance(value, Mapping):
            return redact({"variables": value}, policy)["variables"]
        if len(path) > 1 and policy.is_secret(path[1]):
            return REDACTED
    return mask_value(value, secret_needles([variables], policy))
