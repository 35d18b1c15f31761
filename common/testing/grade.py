"""`make grade`: run stage suites with the scorecard on, against the reference, IMPL= or TARGET=.

Exits non-zero when any item is FAIL or MISSING; NOT GRADABLE items are listed with the reason.
"""
from __future__ import annotations

import argparse
import sys

import pytest

from ..stages import STAGES, built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.testing.grade", description=__doc__)
    parser.add_argument("--stage", type=int, help="grade this stage (default: every stage present)")
    parser.add_argument("--impl", help="a stage package folder to grade instead of the reference")
    parser.add_argument("--target", help="the URL of a running service to grade")
    parser.add_argument("--reports-dir", help="where scorecard.md and scorecard.json go (default: reports/)")
    args = parser.parse_args(argv)
    if (args.impl or args.target) and args.stage is None:
        parser.error("IMPL= and TARGET= need STAGE=<n>: the suite of which stage should judge it?")
    try:
        chosen = [built(args.stage)] if args.stage is not None else [s for s in STAGES if s.exists]
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # One process: the scorecard needs every backend description, and grading favours clear output over speed.
    pytest_args = [str(s.path / "tests") for s in chosen] + ["--scorecard", "-q", "-p", "no:xdist"]
    if args.reports_dir:
        pytest_args += ["--reports-dir", args.reports_dir]
    if args.impl:
        pytest_args += ["--impl", args.impl]
    if args.target:
        pytest_args += ["--target", args.target]
    return int(pytest.main(pytest_args))


if __name__ == "__main__":
    sys.exit(main())
