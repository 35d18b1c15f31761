"""Draw a stage's Grafana dashboard from a real Prometheus, as PNG files, where Grafana itself cannot run.

`python -m common.panels STAGE [--prometheus URL] [--minutes M] [--out DIR]`: every time-series panel of
the stage's `deploy/grafana/dashboards/*.json`, each query run through Prometheus's query_range API over the
last M minutes, one PNG per panel and one overview of them all. The Prometheus is the one `make stageN`
started (its address is in var/prometheus/url) unless --prometheus names another.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .prometheus import api
from .stages import REPO_ROOT, built

DASHBOARDS = Path("deploy") / "grafana" / "dashboards"
URL_FILE = REPO_ROOT / "var" / "prometheus" / "url"
POINTS = 240  # points per series: the step is the window over this
RUNNER_SCRAPE = 5.0  # the scrape interval of the Prometheus `make stageN` starts (common/runner.py)


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    scrape_seconds: float  # the server's scrape interval
    shaded: tuple[float, float] | None = None  # a fault's start and end, drawn as a band
    label: str = ""

    @property
    def step(self) -> float:
        return max(1.0, (self.end - self.start) / POINTS)

    @property
    def rate_interval(self) -> str:
        """What Grafana puts for $__rate_interval: four scrapes, or a step and a scrape if that is longer."""
        return f"{max(4 * self.scrape_seconds, self.step + self.scrape_seconds):.0f}s"


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The time-series panels of a dashboard, with the title of the row each sits in."""
    found, row = [], ""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            row = panel.get("title", "")
        elif panel.get("type") == "timeseries":
            found.append({**panel, "row": row})
    return found


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def query_range(prometheus: str, expr: str, window: Window) -> list[dict[str, Any]]:
    query = expr.replace("$__rate_interval", window.rate_interval)
    return api(prometheus, "query_range", query=query, start=window.start, end=window.end, step=window.step)["result"]


def _with_gaps(values: list[list], window: Window, scale: float) -> list[tuple[float, float]]:
    """(seconds into the window, value) pairs, with NaN where the series has no value: the line breaks
    there instead of drawing a slope across a stretch without data (a quantile of no requests)."""
    points: list[tuple[float, float]] = []
    for stamp, value in values:
        at = float(stamp) - window.start
        if points and at - points[-1][0] > 1.5 * window.step:
            points.append((points[-1][0] + window.step, math.nan))
        points.append((at, float(value) * scale if value not in ("NaN", "+Inf", "-Inf") else math.nan))
    return points


def draw(axes, panel: dict[str, Any], prometheus: str, window: Window) -> int:
    """Plot one panel's queries on `axes`; return how many series it drew."""
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    scale, suffix = {"s": (1000, " ms"), "percentunit": (100, " %")}.get(unit, (1, ""))
    drawn = 0
    for target in panel.get("targets", []):
        for series in query_range(prometheus, target["expr"], window):
            points = _with_gaps(series["values"], window, scale)
            if points:
                axes.plot(*zip(*points), linewidth=1.2,
                          label=legend(target.get("legendFormat", ""), series["metric"]))
                drawn += 1
    if window.shaded:
        axes.axvspan(window.shaded[0] - window.start, window.shaded[1] - window.start, color="red", alpha=0.08,
                     label=window.label or None)
    axes.set_title(panel.get("title", ""), fontsize=9)
    axes.set_xlabel("seconds", fontsize=7)
    axes.set_ylabel(suffix.strip() or unit, fontsize=7)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(fontsize=6, loc="upper left")
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="grey")
    return drawn


def render(stage_dir: Path, prometheus: str, window: Window, out: Path) -> list[Path]:
    """Write one PNG per panel and `overview.png`; return their paths."""
    import matplotlib
    matplotlib.use("Agg")  # no screen: draw to files
    from matplotlib import pyplot

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    every = [panel for path in sorted((stage_dir / DASHBOARDS).glob("*.json"))
             for panel in panels(json.loads(path.read_text(encoding="utf-8")))]
    for index, panel in enumerate(every, 1):
        figure, axes = pyplot.subplots(figsize=(6, 3.2), dpi=110)
        draw(axes, panel, prometheus, window)
        figure.tight_layout()
        path = out / f"{index:02d}-{re.sub(r'[^a-z0-9]+', '-', panel['title'].lower()).strip('-')}.png"
        figure.savefig(path)
        pyplot.close(figure)
        written.append(path)
    columns = 4  # as the dashboard's rows (deploy/grafana/dashboard.py)
    rows = -(-len(every) // columns)
    figure, grid = pyplot.subplots(rows, columns, figsize=(15, 3.1 * rows), dpi=90, squeeze=False)
    for axes, panel in zip(grid.flat, every):
        draw(axes, panel, prometheus, window)
    for axes in list(grid.flat)[len(every):]:
        axes.set_visible(False)
    figure.tight_layout()
    figure.savefig(out / "overview.png")
    pyplot.close(figure)
    return [*written, out / "overview.png"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.panels", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("--prometheus", help=f"the server's URL (default: the one in {URL_FILE.relative_to(REPO_ROOT)})")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: reports/panels/stage<N>)")
    args = parser.parse_args(argv)
    try:
        stage = built(args.stage)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (stage.path / DASHBOARDS).is_dir():
        print(f"error: stage {stage.number} has no dashboards ({stage.folder}/{DASHBOARDS})", file=sys.stderr)
        return 2
    prometheus = args.prometheus or (URL_FILE.read_text().strip() if URL_FILE.is_file() else None)
    if not prometheus:
        print(f"error: no Prometheus: start `make stage{stage.number}` (it starts one) or pass PROMETHEUS=<url>",
              file=sys.stderr)
        return 1
    end = time.time()
    out = args.out or REPO_ROOT / "reports" / "panels" / stage.folder
    try:
        written = render(stage.path, prometheus.rstrip("/"), Window(end - args.minutes * 60, end, RUNNER_SCRAPE), out)
    except requests.RequestException as exc:
        print(f"error: Prometheus at {prometheus} does not answer ({exc}); is `make stage{stage.number}` running?",
              file=sys.stderr)
        return 1
    print(f"{len(written)} PNGs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
