"""The README's table of reasons says what modelsync.conditions.Reason says, and the code sets no other reason.

Each member of ``Reason`` carries its meaning and remedy in words that hold for every registry, with
a ``…`` where the README names what particular registries answer (error codes, field names): each
README row must be that reason's, with the same *registry* mark, and say its meaning and remedy
(``conditions.matches``). ``python -m modelsync.conditions`` prints the table with the gaps.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelsync.conditions import Reason, ReasonClass, matches, reason_table

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "modelsync"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## When something goes wrong"):]
    return section[:section.index("\n## ", 3)]


def table_rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("|")]


def code_sources() -> dict[Path, str]:
    return {p: p.read_text() for p in PACKAGE.rglob("*.py")
            if "simulators" not in p.parts and "testing" not in p.parts and p.name != "conditions.py"}


ROW = re.compile(r"^\| `([A-Za-z]+)`( \(\*registry\*\))? \| (.*) \| (.*) \|$")


def readme_rows() -> dict[str, tuple[bool, str, str]]:
    rows: dict[str, tuple[bool, str, str]] = {}
    for line in table_rows(readme_section())[2:]:
        m = ROW.match(line)
        assert m, f"not a row of the reason table: {line}"
        rows[m.group(1)] = (bool(m.group(2)), m.group(3), m.group(4))
    return rows


def test_the_readme_table_has_a_row_for_each_reason_of_the_table_and_no_other() -> None:
    assert table_rows(readme_section())[0] == reason_table().splitlines()[0]
    assert set(readme_rows()) == {r.value for r in Reason if r.in_table}


@pytest.mark.parametrize("reason", [r for r in Reason if r.in_table], ids=str)
def test_each_readme_row_says_what_its_reason_means(reason: Reason) -> None:
    registry, meaning, remedy = readme_rows()[reason.value]
    assert registry == reason.registry, "the (*registry*) mark"
    assert matches(meaning, reason.meaning), (meaning, reason.meaning)
    assert matches(remedy, reason.remedy), (remedy, reason.remedy)


def test_matching_leaves_room_only_at_the_gaps() -> None:
    assert matches("5xx, 408, 425, 429, ZStack's `ID.1003`, a timeout or a lost connection",
                   "5xx, 408, 425, 429, …, a timeout or a lost connection")
    assert not matches("5xx, 408, 429, a timeout or a lost connection", "5xx, 408, 425, 429, …, a timeout or a lost connection")
    assert not matches("fix the spec; or not", "fix the spec")
    assert not matches("a (b) c (d)", "a (…) x (…)")
    assert matches("a (b) c (d)", "a (…) c (…)")


def test_the_table_lists_every_reason_a_registry_entry_can_have() -> None:
    """Every reason an entry can carry (not a condition's or an Event's summary) has a row, except
    Synced, which is not something going wrong."""
    listed = set(re.findall(r"^\| `([A-Za-z]+)`", readme_section(), flags=re.M))
    entry_reasons = {r.value for r in Reason if r.klass not in (ReasonClass.CONDITION, ReasonClass.EVENT)}
    assert listed == entry_reasons - {Reason.SYNCED.value}


def test_every_reason_the_code_sets_is_a_member_and_every_member_is_set() -> None:
    """A literal ``reason="X"`` (the vendor modules still write some) must be a member, and
    each member must be set somewhere, as ``Reason.NAME`` or as its text."""
    sources = code_sources()
    literals: set[str] = set()
    for text in sources.values():
        literals |= set(re.findall(r'\breason\s*=\s*"([A-Z][A-Za-z]+)"', text))
        literals |= set(re.findall(r'"reason":\s*"([A-Z][A-Za-z]+)"', text))
    values = {r.value for r in Reason}
    assert literals <= values, sorted(literals - values)
    used = {name for text in sources.values() for name in re.findall(r"\bReason\.([A-Z_]+)\b", text)}
    unset = {r.value for r in Reason if r.name not in used and r.value not in literals}
    assert not unset, sorted(unset)


def test_the_summary_reasons_are_in_the_readme() -> None:
    """The reasons of Ready, Synced and a registry's Ready that are not in the table are named
    right below it."""
    section = readme_section()
    for r in (Reason.SYNCED, Reason.NOT_SYNCED, Reason.RECONCILE_SUCCESS, Reason.CONNECTED):
        assert f"`{r.value}`" in section.split("| reason |")[-1].split("\n\n", 2)[-1], r
