"""Stage diffs: `make diff FROM=3 TO=4` prints one, `make diffs` regenerates every CHANGES.diff."""
from __future__ import annotations

import argparse
import difflib
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

from ..stages import STAGES, Stage, built

DIFF_NAME = "CHANGES.diff"
ORDER_NAME = "reading-order.txt"  # each stage's order for its changed code: the lesson's files first
BINARY = "binary file"  # the one line a binary file (an image in design/) stands as in a diff
# Written by a program the stage holds (the dashboard by deploy/grafana/dashboard.py): the diff shows the
# program, and names its output.
GENERATED = ("deploy/grafana/dashboards/",)


def stage_files(root: Path) -> dict[str, Path]:
    """Every file of a stage folder that git would keep (tracked, or new and not ignored),
    keyed by its path inside the stage."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
                            cwd=root, capture_output=True, text=True, check=True).stdout.split("\0")
    return {name: root / name for name in sorted(filter(None, listed))
            if name not in (DIFF_NAME, ORDER_NAME) and (root / name).is_file()}


def reading_order(stage: Stage) -> list[str]:
    """The stage's declared order for its changed code (reading-order.txt), the lesson's files first."""
    path = stage.path / ORDER_NAME
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{BINARY}, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}\n"]
    return text.splitlines(keepends=True)


def kind_of(name: str) -> str:
    """code, tests or docs: the order a reader meets them in a stage diff."""
    if name.startswith("tests/") or name.endswith(".test.yml"):  # promtool's rule tests are tests too
        return "tests"
    return "docs" if name.endswith((".md", ".png")) else "code"


_KINDS = ("code", "tests", "docs")
STAT_WIDTH = 40  # the longest bar of the diffstat, as git scales its own


def _summarised(name: str, old_lines: list[str], new_lines: list[str], added: int, removed: int) -> str | None:
    """For a new test file, a new or rewritten document, an image or a generated file, one line saying so instead of
    its text; else None."""
    if new_lines[:1] and new_lines[0].startswith(BINARY):
        return f"{'new' if not old_lines else 'changed'}, {new_lines[0].strip()}"
    if name.startswith(GENERATED):
        return f"generated, {len(new_lines)} lines"
    kind = kind_of(name)
    if kind == "code":
        return None
    if not old_lines:
        return f"new, {len(new_lines)} lines"
    if kind == "docs" and new_lines and added + removed > len(new_lines):  # more churn than text: read it whole
        return f"rewritten, {len(new_lines)} lines (was {len(old_lines)})"
    return None


def _scaled(count: int, widest: int) -> int:
    """git's scale_linear: a count as a bar length, the widest change filling STAT_WIDTH."""
    if widest <= STAT_WIDTH or count == 0:
        return count
    return 1 + count * (STAT_WIDTH - 1) // widest


def stat_bar(added: int, removed: int, widest: int) -> str:
    """The +/- bar of one file, scaled like git's (a file with both kinds of change shows both)."""
    total = _scaled(added + removed, widest)
    if added and removed and total < 2:
        total = 2
    if added < removed:
        plus = _scaled(added, widest)
        return "+" * plus + "-" * (total - plus)
    minus = _scaled(removed, widest)
    return "+" * (total - minus) + "-" * minus


def stage_diff(old: Stage, new: Stage) -> str:
    """A unified diff of `new` against `old` with stage-relative paths (folder names never show): a diffstat
    first, then the code in the stage's reading order, then tests, then docs; new test files and new or
    rewritten documents are only named."""
    before, after = stage_files(old.path), stage_files(new.path)
    order = reading_order(new)
    changes = []  # (name, diff, added, removed, note)
    for name in before.keys() | after.keys():
        old_lines, new_lines = _lines(before.get(name)), _lines(after.get(name))
        if old_lines == new_lines:
            continue
        diff = list(difflib.unified_diff(old_lines, new_lines, f"a/{name}" if name in before else "/dev/null",
                                         f"b/{name}" if name in after else "/dev/null", n=3))
        added = sum(1 for line in diff[2:] if line.startswith("+"))
        removed = sum(1 for line in diff[2:] if line.startswith("-"))
        changes.append((name, diff, added, removed, _summarised(name, old_lines, new_lines, added, removed)))
    changes.sort(key=lambda c: (_KINDS.index(kind_of(c[0])), order.index(c[0]) if c[0] in order else len(order), c[0]))
    widest = max((added + removed for name, _, added, removed, _ in changes if kind_of(name) == "code"), default=0)
    code_stat: list[str] = []  # the lesson is the code: a line per file; tests and docs are summed
    names: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    counts: dict[str, list[int]] = {kind: [0, 0] for kind in _KINDS}
    body: list[str] = []
    for name, diff, added, removed, note in changes:
        kind = kind_of(name)
        if kind == "code":
            code_stat.append(f"#   {name:<40} | {added + removed:5} {stat_bar(added, removed, widest)}")
        names[kind].append(name)
        counts[kind] = [counts[kind][0] + added, counts[kind][1] + removed]
        if note:
            body.append(f"# {name}: {note}; read it in the stage folder.\n")
            continue
        body += [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff]
    inserted, deleted = sum(c[2] for c in changes), sum(c[3] for c in changes)
    header = [f"# What {new.folder} changes against {old.folder}. Generated by `make diffs`; do not edit.",
              f"# {len(changes)} files changed, {inserted} insertions(+), {deleted} deletions(-).",
              f"# Below: the code in the stage's reading order ({ORDER_NAME}), then tests, then docs."]
    for kind in _KINDS:
        if kind == "code" and code_stat:
            header += [f"# {kind}:", *code_stat]
        elif kind != "code" and names[kind]:  # one summary, then the file names
            header.append(f"# {kind}: {len(names[kind])} files, {counts[kind][0]} insertions(+), "
                          f"{counts[kind][1]} deletions(-):")
            header += textwrap.wrap(", ".join(names[kind]), 110, initial_indent="#   ", subsequent_indent="#   ",
                                    break_on_hyphens=False)
    return "\n".join(header) + "\n" + "".join(body)


def consecutive_pairs() -> list[tuple[Stage, Stage]]:
    present = [s for s in STAGES if s.exists]
    return list(zip(present, present[1:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.tools.diffs", description=__doc__)
    parser.add_argument("--from", dest="old", type=int)
    parser.add_argument("--to", dest="new", type=int)
    parser.add_argument("--write", action="store_true", help="regenerate every stage's CHANGES.diff")
    parser.add_argument("--check", action="store_true", help="exit 1 if a CHANGES.diff is stale")
    args = parser.parse_args(argv)
    if args.write or args.check:
        stale = []
        for old, new in consecutive_pairs():
            target, text = new.path / DIFF_NAME, stage_diff(old, new)
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target)
                if args.write:
                    target.write_text(text, encoding="utf-8")
        for path in stale:
            print(f"{'wrote' if args.write else 'stale'}: {path.relative_to(path.parent.parent)}")
        return 1 if stale and args.check else 0
    if args.old is None or args.new is None:
        parser.error("give FROM= and TO= (stage numbers), or --write / --check")
    try:
        old, new = built(args.old), built(args.new)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(stage_diff(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
