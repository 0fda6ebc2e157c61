"""Fixtures of the reliability tests, and the section of figures at the end of a run.

Every test reports what it measured (kills survived, commits verified, flips detected)
through the ``figure`` fixture: the line is printed (pytest shows it with ``-s`` or on
failure) and listed again in a "reliability figures" section of the terminal summary,
so a plain ``pytest`` run, CI's included, shows the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reliability.harness import FIGURES, SOAK, ForkServer


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report one measured figure of the running test."""

    def record(text: str) -> None:
        line = f"{request.node.name}: {text}"
        print(f"[reliability] {line}")
        request.config.stash.setdefault(FIGURES, []).append(line)

    return record


@pytest.fixture(scope="module")
def fork_server() -> Iterator[ForkServer]:
    """A fork server for children that get killed (see ``harness.ForkServer``)."""
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(FIGURES, [])
    if lines:
        title = "reliability figures" + (" (soak run, CKPT_SOAK=1)" if SOAK else "")
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)
