"""The grading scorecard: one row per checklist item, PASS / FAIL / SKIP / MISSING."""
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

_RANK = {"FAIL": 3, "PASS": 1, "SKIP": 0}


@dataclass
class Row:
    stage: int
    item: CheckItem
    verdict: str = "MISSING"
    tests: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, nodeid: str, verdict: str, reason: str = "") -> None:
        if nodeid not in self.tests:
            self.tests.append(nodeid)
        if reason and reason not in self.reasons:
            self.reasons.append(reason)
        # FAIL beats PASS beats SKIP: an item passes only if every test that proves it passed.
        if self.verdict == "MISSING" or _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict


class Scorecard:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], Row] = {}

    def expect(self, stage: Stage, checklist: dict[str, CheckItem]) -> None:
        for item in checklist.values():
            self.rows.setdefault((stage.number, item.id), Row(stage.number, item))

    def record(self, stage: Stage, ids: list[str], report: pytest.TestReport) -> None:
        """Fold one test phase's outcome into the rows of the checklist items the test proves."""
        if report.passed and report.when != "call":
            return  # a passing setup or teardown says nothing yet
        verdict = "FAIL" if report.failed else "SKIP" if report.skipped else "PASS"
        reason = _reason(report) if verdict != "PASS" else ""
        for check_id in ids:
            if row := self.rows.get((stage.number, check_id)):
                row.add(report.nodeid, verdict, reason)

    def sorted_rows(self) -> list[Row]:
        return sorted(self.rows.values(), key=lambda row: (row.stage, row.item.sort_key))

    def totals(self) -> dict[str, int]:
        counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "MISSING": 0}
        for row in self.rows.values():
            counts[row.verdict] += 1
        return counts

    def render_text(self) -> list[str]:
        rows = self.sorted_rows()
        width = max((len(row.item.title) for row in rows), default=10)
        width = min(width, 70)
        lines = [f"{'stage':<6}{'ID':<9}{'check':<{width}}  verdict"]
        for row in rows:
            title = row.item.title if len(row.item.title) <= width else row.item.title[: width - 1] + "…"
            lines.append(f"{row.stage:<6}{row.item.id:<9}{title:<{width}}  {row.verdict}")
            if row.verdict in ("SKIP", "FAIL") and row.reasons:
                lines.append(f"{'':15}  ({row.reasons[0]})")
        totals = self.totals()
        lines.append("totals: " + ", ".join(f"{count} {name}" for name, count in totals.items()))
        return lines

    def as_json(self, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
            **context,
            "totals": self.totals(),
            "items": [{"stage": row.stage, "id": row.item.id, "title": row.item.title, "verdict": row.verdict,
                       "tests": row.tests, "reasons": row.reasons} for row in self.sorted_rows()],
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
              "| stage | ID | check | verdict |", "|---|---|---|---|"]
        md += [f"| {row.stage} | {row.item.id} | {row.item.title} | {row.verdict} |" for row in self.sorted_rows()]
        md += ["", "Totals: " + ", ".join(f"{count} {name}" for name, count in data["totals"].items()), ""]
        md_path.write_text("\n".join(md), encoding="utf-8")
        return [md_path, json_path]


def _reason(report: pytest.TestReport) -> str:
    """The first line of why a test failed or was skipped."""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2])
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash else str(report.longrepr)
    return f"{report.when}: {text.splitlines()[0][:200]}" if text else report.when
