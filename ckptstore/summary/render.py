"""Summary documents: choosing items within a token budget, and writing them out.

A :class:`Document` is a title, a few header lines and sections of groups of
:class:`Item`. :func:`fit` marks the items that fit a budget, highest priority first
(the first ten of each group ahead of the rest of theirs), and renders the document in
one of ``FORMATS``; every group with items left out gets a marker line counting them.
The result is measured as a whole and trimmed until the estimate is within the budget,
so the budget holds even where the estimator is not additive over lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from ckptstore.tokens import clip_text, estimate_text

__all__ = ["FORMATS", "Document", "Group", "Item", "Section", "fit"]


class Item:
    """One line of a summary: its priority (lower first), its text and its JSON form.

    Both are made on first use: a summary of 10,000 tasks renders only the few hundred
    it looks at.
    """

    __slots__ = ("_made", "chosen", "make", "order", "priority")

    def __init__(self, priority: int, make: Callable[[], tuple[str, Any]]) -> None:
        self.priority = priority
        self.make = make
        self.chosen = False
        self.order = (0, 0, 0)
        self._made: tuple[str, Any] | None = None

    def _get(self) -> tuple[str, Any]:
        if self._made is None:
            self._made = self.make()
        return self._made

    @property
    def text(self) -> str:
        """The line, without its bullet."""
        return self._get()[0]

    @property
    def data(self) -> Any:
        """The JSON form."""
        return self._get()[1]


@dataclass(slots=True)
class Group:
    """Items that share a marker ("… 37 more pending tasks").

    ``excluded`` counts entries this level or task type does not list at all; the
    marker counts them with the items left out for the budget.
    """

    name: str
    noun: str
    items: list[Item]
    excluded: int = 0

    def omitted(self) -> int:
        """How many entries of this group the summary does not show."""
        return self.excluded + sum(1 for item in self.items if not item.chosen)

    def total(self) -> int:
        """How many entries the group stands for."""
        return self.excluded + len(self.items)


@dataclass(slots=True)
class Section:
    """A titled part of a summary (tasks, variables...); ``info`` goes into JSON as is."""

    name: str
    title: str
    groups: list[Group]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Document:
    """A whole summary before rendering. ``head`` lines are (label, json key, text, json)."""

    title: str
    head: list[tuple[str, str, str, Any]]
    sections: list[Section]
    meta: dict[str, Any]

    def groups(self) -> list[Group]:
        """Every group, in document order."""
        return [group for section in self.sections for group in section.groups]


_LOOKAHEAD: Final = 32
"""Items tried past the last that fit before the budget counts as full (a shorter line
further down may still fit; looking at all 10,000 would cost more than it finds)."""


_HEAD: Final = 10
_TAIL: Final = 5
"""Past the first ``_HEAD`` items of a group, items rank ``_TAIL`` lower: a long list (a
thousand in-progress tasks) shows its start, then lets other sections in, then goes on."""


def _rank(item: Item) -> tuple[int, tuple[int, int, int]]:
    return (item.priority + (_TAIL if item.order[2] >= _HEAD else 0), item.order)


def _marker(group: Group) -> str:
    return f"… {group.omitted()} more {group.noun}"


def _lines(doc: Document, *, markdown: bool) -> str:
    bullet, indent = ("- ", "- ") if markdown else ("", "  ")
    out = [f"# {doc.title}" if markdown else doc.title]
    out += [f"{bullet}{label}: {text}" for label, _, text, _ in doc.head]
    for section in doc.sections:
        out.append("")
        out.append(f"## {section.title}" if markdown else section.title)
        for group in section.groups:
            out += [f"{indent}{item.text}" for item in group.items if item.chosen]
            if group.omitted():
                out.append(f"{indent}{_marker(group)}")
    return "\n".join(out) + "\n"


def _json_document(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = dict(doc.meta)
    out.update((key, value) for _, key, _, value in doc.head)
    for section in doc.sections:
        omitted = {g.name: g.omitted() for g in section.groups if g.omitted()}
        shown = [item.data for g in section.groups for item in g.items if item.chosen]
        out[section.name] = {**section.info, "shown": shown, "omitted": omitted}
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


class _Format(NamedTuple):
    render: Callable[[Document], str]
    item_text: Callable[[Item], str]


FORMATS: Final = {
    "markdown": _Format(lambda d: _lines(d, markdown=True), lambda i: f"- {i.text}\n"),
    "text": _Format(lambda d: _lines(d, markdown=False), lambda i: f"  {i.text}\n"),
    "json": _Format(lambda d: _dumps(_json_document(d)), lambda i: _dumps(i.data)),
}


def _collapsed(doc: Document, fmt: str, budget: int, *, head: bool) -> str:
    """Everything counted in one line: for budgets too small for even the markers."""
    totals = {s.name: sum(g.total() for g in s.groups) for s in doc.sections}
    totals = {name: n for name, n in totals.items() if n}
    for group in doc.groups():
        for item in group.items:
            item.chosen = False
    if fmt == "json":
        out: dict[str, Any] = dict(doc.meta)
        if head:
            out.update((key, value) for _, key, _, value in doc.head)
        return _dumps({**out, "collapsed": True, "omitted": totals})
    counted = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in totals.items())
    lines = [f"# {doc.title}" if fmt == "markdown" else doc.title]
    if head:
        bullet = "- " if fmt == "markdown" else ""
        lines += [f"{bullet}{label}: {text}" for label, _, text, _ in doc.head]
    if counted:
        lines.append(f"… not shown within {budget} tokens: {counted}")
    return "\n".join(lines) + "\n"


def fit(doc: Document, fmt: str, budget: int) -> str:
    """Choose the items of ``doc`` that fit ``budget`` tokens and render it in ``fmt``."""
    form = FORMATS[fmt]
    items: list[Item] = []
    for s, section in enumerate(doc.sections):
        for g, group in enumerate(section.groups):
            for i, item in enumerate(group.items):
                item.chosen = False
                item.order = (s, g, i)
                items.append(item)
    # With nothing chosen, every marker counts its whole group: the largest skeleton.
    text = form.render(doc)
    remaining = budget - estimate_text(text)
    if remaining < 0:
        for head in (True, False):
            text = _collapsed(doc, fmt, budget, head=head)
            if estimate_text(text) <= budget:
                return text
        return clip_text(text, budget)
    costs: dict[int, int] = {}
    misses = 0
    for item in sorted(items, key=_rank):
        if remaining <= 1 or misses >= _LOOKAHEAD:
            break
        cost = estimate_text(form.item_text(item))
        if cost <= remaining:
            item.chosen = True
            costs[id(item)] = cost
            remaining -= cost
            misses = 0
        else:
            misses += 1
    text = form.render(doc)
    over = estimate_text(text) - budget
    chosen = sorted((it for it in items if it.chosen), key=_rank)
    while over > 0 and chosen:
        # The estimate of the whole can exceed the sum of its lines: give back the least
        # important lines until it fits.
        freed = 0
        while chosen and freed < over:
            item = chosen.pop()
            item.chosen = False
            freed += costs[id(item)]
        text = form.render(doc)
        over = estimate_text(text) - budget
    return text
