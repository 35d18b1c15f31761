"""Read a stage README's acceptance checklist, and find the IDs its tests claim to prove."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CHECK_ID = re.compile(r"S(\d+)-AC(\d+)")
# A checklist row:  | S1-AC3 | Title of the check |
_ROW = re.compile(r"^\|\s*(S\d+-AC\d+)\s*\|\s*(.+?)\s*\|\s*$")


@dataclass(frozen=True)
class CheckItem:
    id: str
    title: str

    @property
    def stage(self) -> int:
        return int(CHECK_ID.fullmatch(self.id).group(1))  # type: ignore[union-attr]

    @property
    def sort_key(self) -> tuple[int, int]:
        stage, number = CHECK_ID.fullmatch(self.id).groups()  # type: ignore[union-attr]
        return int(stage), int(number)


@cache
def readme_checklist(stage_dir: Path) -> dict[str, CheckItem]:
    """Return the checklist rows of `<stage_dir>/README.md`, keyed by ID."""
    items: dict[str, CheckItem] = {}
    for line in (stage_dir / "README.md").read_text(encoding="utf-8").splitlines():
        if match := _ROW.match(line.strip()):
            check_id, title = match.groups()
            if check_id in items:
                raise ValueError(f"{stage_dir.name}/README.md lists {check_id} twice")
            items[check_id] = CheckItem(check_id, title)
    return items


def check_ids(item) -> list[str]:
    """The checklist IDs a collected pytest item names with `@pytest.mark.check(...)`."""
    return [str(arg) for mark in item.iter_markers("check") for arg in mark.args]


def ids_in_tests(tests_dir: Path) -> dict[str, list[str]]:
    """Return {check id: [test locations]} for every `@pytest.mark.check("...")` under `tests_dir`."""
    found: dict[str, list[str]] = {}
    for path in sorted(tests_dir.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "check"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.setdefault(arg.value, []).append(f"{path.name}:{node.lineno}")
    return found
