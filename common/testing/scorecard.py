"""The grading scorecard: one row per checklist item, PASS / FAIL / NOT GRADABLE / MISSING.

An item is PASS only when every test that proves it ran and passed; FAIL when one of them failed
(or errored); NOT GRADABLE, with the reasons, when any of them could not run; MISSING when it has
no test at all.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ..stages import Stage
from .checklist import CheckItem

VERDICTS = ("PASS", "FAIL", "NOT GRADABLE", "MISSING")


@dataclass
class TestOutcome:
    """What one test did, folded over its setup, call and teardown."""

    nodeid: str
    ids: list[str]
    outcome: str = "passed"  # passed, failed, error, skipped
    reason: str = ""

    def fold(self, report: pytest.TestReport) -> None:
        if self.outcome in ("failed", "error"):
            return  # the first failure is the one that explains the test
        if hasattr(report, "wasxfail"):
            # An expected failure (xfail) or an unexpected pass (xpass) proves nothing either way.
            self.outcome, self.reason = "failed", f"{report.when}: xfail is not allowed in an acceptance test"
        elif report.failed:
            self.outcome = "failed" if report.when == "call" else "error"
            self.reason = _reason(report)
        elif report.skipped:
            self.outcome, self.reason = "skipped", _reason(report)


@dataclass
class Row:
    stage: int
    item: CheckItem
    tests: dict[str, TestOutcome] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        outcomes = {test.outcome for test in self.tests.values()}
        if not outcomes:
            return "MISSING"
        if outcomes & {"failed", "error"}:
            return "FAIL"
        return "NOT GRADABLE" if "skipped" in outcomes else "PASS"

    @property
    def reasons(self) -> list[str]:
        """Why the item is not PASS: the failures if any, else what did not run."""
        wanted = {"failed", "error"} if self.verdict == "FAIL" else {"skipped"}
        found = []
        for test in self.tests.values():
            if test.outcome in wanted and (line := f"{test.nodeid.rsplit('::', 1)[-1]}: {test.reason}") not in found:
                found.append(line)
        return found


class Scorecard:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], Row] = {}

    def expect(self, stage: Stage, checklist: dict[str, CheckItem]) -> None:
        for item in checklist.values():
            self.rows.setdefault((stage.number, item.id), Row(stage.number, item))

    def record(self, stage: Stage, ids: list[str], report: pytest.TestReport) -> None:
        """Fold one test phase's report into the rows of the checklist items the test proves."""
        for check_id in ids:
            row = self.rows.get((stage.number, check_id))
            if row is None:
                continue  # an ID the stage does not grade: that test itself fails at setup, saying why
            row.tests.setdefault(report.nodeid, TestOutcome(report.nodeid, ids)).fold(report)

    def sorted_rows(self) -> list[Row]:
        return sorted(self.rows.values(), key=lambda row: (row.stage, row.item.sort_key))

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self.rows.values():
            counts[row.verdict] += 1
        return counts

    @property
    def failed(self) -> bool:
        """True when grading must exit non-zero: an item failed or has no test."""
        totals = self.totals()
        return bool(totals["FAIL"] or totals["MISSING"])

    def render_text(self) -> list[str]:
        rows = self.sorted_rows()
        width = min(max((len(row.item.title) for row in rows), default=10), 70)
        lines = [f"{'stage':<6}{'ID':<9}{'check':<{width}}  verdict"]
        for row in rows:
            title = row.item.title if len(row.item.title) <= width else row.item.title[: width - 1] + "…"
            lines.append(f"{row.stage:<6}{row.item.id:<9}{title:<{width}}  {row.verdict}")
            lines += [f"{'':15}  - {reason}" for reason in row.reasons[:3]]
        lines.append("totals: " + ", ".join(f"{count} {name}" for name, count in self.totals().items()))
        return lines

    def as_json(self, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
            **context,
            "totals": self.totals(),
            "items": [{"stage": row.stage, "id": row.item.id, "title": row.item.title, "verdict": row.verdict,
                       "tests": {t.nodeid: t.outcome for t in row.tests.values()}, "reasons": row.reasons}
                      for row in self.sorted_rows()],
        }

    def write(self, reports_dir: Path, *, context: dict[str, Any]) -> list[Path]:
        """Write scorecard.json and scorecard.md; return their paths."""
        reports_dir.mkdir(parents=True, exist_ok=True)
        data = self.as_json(context)
        json_path, md_path = reports_dir / "scorecard.json", reports_dir / "scorecard.md"
        json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        md = [f"# Scorecard ({data['generated_at']})", "",
              f"Graded on {data['machine']}; implementation: {context.get('impl') or context.get('target') or 'reference'}; "
              f"backends: {', '.join(f'{k}: {v}' for k, v in context.get('backends', {}).items()) or 'none'}.", "",
              "| stage | ID | check | verdict | why not PASS |", "|---|---|---|---|---|"]
        md += [f"| {row.stage} | {row.item.id} | {row.item.title} | {row.verdict} | "
               f"{'<br>'.join(_md(r) for r in row.reasons)} |" for row in self.sorted_rows()]
        md += ["", "Totals: " + ", ".join(f"{count} {name}" for name, count in data["totals"].items()), ""]
        md_path.write_text("\n".join(md), encoding="utf-8")
        return [md_path, json_path]


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _reason(report: pytest.TestReport) -> str:
    """The first line of why a test failed or was skipped."""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash else str(report.longrepr)
    return f"{report.when}: {text.splitlines()[0][:200]}" if text else report.when
