"""The README's error table names exactly the reasons the code can set."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def code_reasons() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "operator" / "modelsync").rglob("*.py"):
        if "simulators" in path.parts or "testing" in path.parts:
            continue
        found |= set(re.findall(r'\breason\s*=\s*"([A-Z][A-Za-z]+)"', path.read_text()))
    return found


def table_reasons() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## When something goes wrong"):]
    table = table[:table.index("\n## ", 3)]
    return set(re.findall(r"^\| `([A-Za-z]+)`", table, flags=re.M))


def test_every_reason_the_code_sets_is_in_the_readme_table_and_no_other() -> None:
    assert code_reasons() == table_reasons()
