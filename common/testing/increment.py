"""Prove the tests test the increment: stage N's new checks must fail against stage N-1's code.

`python -m common.testing.increment 1 2` runs, for each stage N given, the tests whose checklist IDs
are new in N (S<N>-...) with stage N-1 served in their place. Every new item must have a test whose
body fails an assertion there. Only that counts: a fixture that errors, a previous stage that does
not start, or a test that crashes on something else (an ImportError, a refused connection) proves
nothing about the check, and neither does an item graded PASS or NOT GRADABLE. A stage with no new
items fails the proof too: a stage must teach something observable.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pytest

from ..stages import stage
from .checklist import check_ids, readme_checklist


def assertion_failed(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    """True when a test body failed a check (an assert, pytest.fail, a schemathesis failure)."""
    if excinfo is None:
        return False
    error = excinfo.value
    if isinstance(error, BaseExceptionGroup):
        leaves = error.exceptions
        return bool(leaves) and all(isinstance(e, (AssertionError, pytest.fail.Exception)) for e in leaves)
    return isinstance(error, (AssertionError, pytest.fail.Exception))


@dataclass
class TestResult:
    ids: list[str]
    counted: bool = False  # the body failed a check
    why_not: list[str] = field(default_factory=list)


class _Outcomes:
    """Collects, per test, whether its body failed an assertion (and why not, when it did not)."""

    def __init__(self) -> None:
        self.by_test: dict[str, TestResult] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        result = self.by_test.setdefault(item.nodeid, TestResult(check_ids(item)))
        if report.when == "call" and report.failed and assertion_failed(call.excinfo):
            result.counted = True
        elif report.failed:
            kind = "setup error" if report.when != "call" else f"crashed with {call.excinfo.typename}"
            result.why_not.append(f"{item.name}: {kind}, not a failed check")
        elif report.skipped:
            result.why_not.append(f"{item.name}: skipped")
        elif report.when == "call":
            result.why_not.append(f"{item.name}: passed")
        return report


def prove(number: int) -> list[str]:
    """Return the problems found for stage `number` (empty when the proof holds)."""
    new, old = stage(number), stage(number - 1)
    listed = sorted(i for i in readme_checklist(new).own)
    if not listed:
        return [f"{new.folder}/README.md lists no new checklist item"]
    outcomes = _Outcomes()
    pytest.main([str(new.path / "tests"), "--only-new", "--impl", str(old.path), "-q", "--no-header",
                 "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=no"], plugins=[outcomes])
    problems = []
    for check_id in listed:
        results = [r for r in outcomes.by_test.values() if check_id in r.ids]
        if not results:
            problems.append(f"{check_id}: no test of it ran")
        elif not any(r.counted for r in results):
            reasons = "; ".join(reason for r in results for reason in r.why_not)
            problems.append(f"{check_id}: no test of it fails a check against {old.folder} ({reasons})")
    return problems


def main(argv: list[str] | None = None) -> int:
    numbers = [int(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not numbers:
        print("usage: python -m common.testing.increment N [N ...]  (stages from 1 on)", file=sys.stderr)
        return 2
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
