"""Read a stage README's acceptance checklist: its own items, what it supersedes, and what it inherits.

A stage README lists only the items it adds, in two-column rows (`| S2-AC1 | title |`), and a
"superseded" table of earlier items it changes, in three-column rows (`| S1-AC3 | S4-AC2 | why |`).
Every other item of the stages before it is inherited by reference and graded against this stage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ..stages import STAGES, Stage

CHECK_ID = re.compile(r"S(\d+)-AC(\d+)")
_SECTION = "## Acceptance checklist"


class ChecklistError(ValueError):
    """A README checklist that breaks the rules above."""


@dataclass(frozen=True)
class CheckItem:
    id: str
    title: str

    @property
    def sort_key(self) -> tuple[int, int]:
        stage, number = CHECK_ID.fullmatch(self.id).groups()  # type: ignore[union-attr]
        return int(stage), int(number)


@dataclass(frozen=True)
class Checklist:
    """One README's checklist: the stage's own items and {superseded id: the id that replaces it}."""

    own: dict[str, CheckItem]
    superseded: dict[str, str]


def _cells(line: str) -> list[str] | None:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    cells = [cell.strip() for cell in line[1:-1].split("|")]
    return cells if CHECK_ID.fullmatch(cells[0]) else None


@cache
def readme_checklist(stage: Stage) -> Checklist:
    """Parse the checklist section of `<stage folder>/README.md`; raise ChecklistError on a broken one."""
    text = (stage.path / "README.md").read_text(encoding="utf-8")
    if _SECTION not in text:
        raise ChecklistError(f"{stage.folder}/README.md has no '{_SECTION}' section")
    section = text.split(_SECTION, 1)[1].split("\n## ", 1)[0]
    own: dict[str, CheckItem] = {}
    superseded: dict[str, str] = {}
    for line in section.splitlines():
        cells = _cells(line)
        if cells is None:
            continue
        check_id, number = cells[0], int(CHECK_ID.fullmatch(cells[0]).group(1))  # type: ignore[union-attr]
        where = f"{stage.folder}/README.md: {check_id}"
        if len(cells) == 2:
            if number != stage.number:
                raise ChecklistError(f"{where} belongs to stage {number}: list only this stage's own items "
                                     "(earlier ones are inherited) or supersede it in a three-column row")
            if check_id in own:
                raise ChecklistError(f"{where} is listed twice")
            own[check_id] = CheckItem(check_id, cells[1])
        elif len(cells) == 3 and number < stage.number and CHECK_ID.fullmatch(cells[1]):
            superseded[check_id] = cells[1]
        else:
            raise ChecklistError(f"{where}: a row is '| ID | check |' or, for an earlier item, "
                                 "'| old ID | new ID | why |'")
    for old, new in superseded.items():
        if new not in own:
            raise ChecklistError(f"{stage.folder}/README.md supersedes {old} by {new}, which it does not list")
    return Checklist(own, superseded)


@cache
def effective_checklist(stage: Stage) -> dict[str, CheckItem]:
    """Every item stage `stage` is graded on: its own, plus the previous stage's not superseded here."""
    checklist = readme_checklist(stage)
    earlier = [s for s in STAGES if s.number < stage.number and s.exists]
    inherited = effective_checklist(earlier[-1]) if earlier else {}
    unknown = set(checklist.superseded) - set(inherited)
    if unknown:
        raise ChecklistError(f"{stage.folder}/README.md supersedes {sorted(unknown)}, which no earlier stage "
                             "still grades")
    items = {key: item for key, item in inherited.items() if key not in checklist.superseded}
    items.update(checklist.own)
    return dict(sorted(items.items(), key=lambda pair: pair[1].sort_key))


def check_ids(item) -> list[str]:
    """The checklist IDs a collected pytest item names with `@pytest.mark.check(...)`."""
    return [str(arg) for mark in item.iter_markers("check") for arg in mark.args]
