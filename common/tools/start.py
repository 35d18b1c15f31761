"""`make start STAGE=N`: copy stage N-1's end state into workspace/ as the learner's stage N attempt."""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from ..stages import REPO_ROOT, built, here, stage

WORKSPACE = REPO_ROOT / "workspace"
_NUMBER = re.compile(r"^NUMBER = \d+$", re.MULTILINE)


def set_stage_number(package: Path, number: int) -> None:
    """Make the package serve stage `number`'s view of the contract (its NUMBER in __init__.py)."""
    init = package / "__init__.py"
    init.write_text(_NUMBER.sub(f"NUMBER = {number}", init.read_text(encoding="utf-8")), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: make start STAGE=<1-8>", file=sys.stderr)
        return 2
    try:
        # The goal's README and checks must be here too: they are what the attempt is built and graded against.
        goal = built(int(argv[0]))
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if goal.number == 0:
        print(f"error: an attempt at stage N starts from stage N-1, and stage 0 has none; stages here: {here()}",
              file=sys.stderr)
        return 2
    base = stage(goal.number - 1)
    destination = WORKSPACE / goal.folder
    relative = destination.relative_to(REPO_ROOT) if destination.is_relative_to(REPO_ROOT) else destination
    if destination.exists():
        print(f"error: {relative} exists already; move it away to start over", file=sys.stderr)
        return 2
    shutil.copytree(base.path, destination,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "CHANGES.diff", "reading-order.txt", "tests"))
    # The attempt documents, at /openapi.json and /docs, the contract it is graded against.
    set_stage_number(destination, goal.number)
    print(f"Copied {base.folder} (the end state of stage {base.number}) to {relative}.\n"
          f"Build stage {goal.number} - {goal.title} [{goal.title_zh}] there; the goals are in {goal.folder}/README.md.\n"
          f"  serve it:  .venv/bin/python -m common.runner {goal.number} --impl {relative}\n"
          f"  grade it:  make grade STAGE={goal.number} IMPL={relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
