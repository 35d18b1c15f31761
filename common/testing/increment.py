"""Prove the tests test the increment: stage N's new checks must fail against stage N-1's code.

`python -m common.testing.increment 1 2` runs, for each stage N given, the tests whose checklist IDs
are new in N (S<N>-...) with stage N-1 served in its place. Every new checklist item must be graded
FAIL there, i.e. at least one of its tests must fail; an item graded PASS or SKIP proves nothing.
"""
from __future__ import annotations

import sys

import pytest

from ..stages import stage
from .checklist import check_ids, readme_checklist


class _Outcomes:
    def __init__(self) -> None:
        self.by_test: dict[str, tuple[list[str], str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):  # noqa: ARG002
        report = yield
        ids = check_ids(item)
        previous = self.by_test.get(item.nodeid, (ids, "passed"))[1]
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped" if previous == "passed" else previous
        else:
            outcome = previous
        self.by_test[item.nodeid] = (ids, outcome)
        return report


def prove(number: int) -> list[str]:
    """Return the problems found for stage `number` (empty when the proof holds)."""
    new, old = stage(number), stage(number - 1)
    outcomes = _Outcomes()
    pytest.main([str(new.path / "tests"), "--only-new", "--impl", str(old.path), "-q", "--no-header",
                 "-p", "no:cacheprovider", "--tb=no"], plugins=[outcomes])
    failing_ids, seen_ids = set(), set()
    for ids, outcome in outcomes.by_test.values():
        new_ids = [i for i in ids if i.startswith(f"S{number}-")]
        seen_ids.update(new_ids)
        if outcome == "failed":
            failing_ids.update(new_ids)
    listed = {i for i in readme_checklist(new.path) if i.startswith(f"S{number}-")}
    return [f"{i}: no test of it ran" for i in sorted(listed - seen_ids)] + \
        [f"{i}: no test of it fails against {old.folder}" for i in sorted(seen_ids - failing_ids)]


def main(argv: list[str] | None = None) -> int:
    numbers = [int(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    failed = False
    for number in numbers:
        problems = prove(number)
        print(f"increment proof, stage {number}: " + ("every new check fails against the previous stage"
                                                      if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
