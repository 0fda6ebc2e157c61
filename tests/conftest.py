"""Shared fixtures and Hypothesis profiles.

Profiles, chosen with HYPOTHESIS_PROFILE: ``dev`` (default, quick), ``ci`` (derandomized,
no deadline: the same examples on every run), ``deep`` (many examples; run by hand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ckptstore import Store

settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=2000,
    deadline=None,
    stateful_step_count=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a store or session from the developer's environment."""
    for name in (
        "CKPT_STORE", "CKPT_SESSION", "CKPT_BUSY_TIMEOUT", "CKPT_AGENT_ID",
        "CKPT_AGENT_TIER", "CKPT_SESSION_ID", "CKPT_TOKENIZER",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A directory holding a freshly initialised on-disk store."""
    directory = tmp_path / ".ckpt"
    Store.init(directory).close()
    return directory


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store, once per backend."""
    opened = Store.memory() if request.param == "memory" else Store.init(tmp_path / ".ckpt")
    try:
        yield opened
    finally:
        opened.close()
