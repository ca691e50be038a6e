"""Hints and runbooks stay in step: every runbook section a hint names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"runbooks\.md#([a-z0-9-]+)")


def _anchors() -> set[str]:
    """GitHub's anchors for docs/runbooks.md's headings (lower case, spaces to '-')."""
    text = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_runbook_reference_in_the_agent_resolves() -> None:
    """A hint that sends someone to a runbook sends them to a section that exists."""
    anchors = _anchors()
    refs: dict[str, list[str]] = {}
    mentions = []
    for path in sorted((ROOT / "agent").rglob("*.py")):
        text = path.read_text()
        for anchor in REF.findall(text):
            refs.setdefault(anchor, []).append(path.name)
        # "see the runbook" without an anchor is how a dangling reference started.
        mentions += [f"{path.name}: {m}" for m in re.findall(r"runbook'?s? [a-z]+ section",
                                                              text)]
    assert refs, "no hint names a runbook section"
    assert {a: f for a, f in refs.items() if a not in anchors} == {}
    assert mentions == []


def test_every_check_section_is_a_runbook_heading() -> None:
    """The landing page and check --json name runbook sections that docs/runbooks.md has."""
    from mongooseim_agent import runbooks

    anchors = _anchors()
    assert {c: a for c, a in runbooks.SECTIONS.items()
            if runbooks.anchor(a) not in anchors} == {}
    assert runbooks.reference("listener_c2s") == "docs/runbooks.md#mongooseimlistenerdown"
    assert runbooks.reference("no_such_check") is None
