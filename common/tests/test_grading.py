"""The grading rules: what a verdict means, when grading fails, and what the increment proof counts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.connections import database_engine
from common.schema import apply_schema
from common.service import ServiceProcess, free_port
from common.stages import REPO_ROOT, StagePackage, stage
from common.testing import increment
from common.testing.checklist import CheckItem, Checklist
from common.testing.scorecard import Scorecard

STAGE0 = stage(0)


def report(nodeid: str, when: str, outcome: str, longrepr=None, **extra) -> pytest.TestReport:
    made = pytest.TestReport(nodeid, ("t.py", 1, nodeid), {}, outcome, longrepr, when)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def verdict_of(*phases: pytest.TestReport) -> str:
    """Fold test phases (all proving one item) into a fresh scorecard; return the item's verdict."""
    card = Scorecard()
    card.expect(STAGE0, {"S0-AC1": CheckItem("S0-AC1", "the item")})
    for phase in phases:
        card.record(STAGE0, ["S0-AC1"], phase)
    return card.rows[(0, "S0-AC1")].verdict


SKIP = ("t.py", 1, "Skipped: not gradable against TARGET")


def test_an_item_passes_only_when_every_test_of_it_ran_and_passed():
    assert verdict_of(report("a", "setup", "passed"), report("a", "call", "passed")) == "PASS"
    # A pass plus a skip (another test, or another parameter of the same test) is not a pass.
    assert verdict_of(report("a", "call", "passed"), report("b", "setup", "skipped", SKIP)) == "NOT GRADABLE"
    assert verdict_of(report("a[x]", "call", "passed"), report("a[y]", "call", "skipped", SKIP)) == "NOT GRADABLE"
    # An unexpected pass of an xfail-marked test, or an expected failure, proves nothing.
    assert verdict_of(report("a", "call", "passed", wasxfail="")) == "FAIL"
    assert verdict_of(report("a", "call", "skipped", SKIP, wasxfail="")) == "FAIL"
    assert verdict_of(report("a", "call", "passed"), report("b", "setup", "failed", "boom")) == "FAIL"
    assert verdict_of() == "MISSING"


def test_the_reason_an_item_is_not_gradable_is_kept():
    card = Scorecard()
    card.expect(STAGE0, {"S0-AC1": CheckItem("S0-AC1", "the item")})
    card.record(STAGE0, ["S0-AC1"], report("t.py::test_b", "setup", "skipped", SKIP))
    assert card.rows[(0, "S0-AC1")].reasons == ["test_b: setup: not gradable against TARGET"]
    assert not card.failed


def grade(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "common.testing.grade", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_a_missing_item_fails_make_grade(tmp_path):
    # Deselecting every test but one leaves the other items of stage 0 with no test at all.
    result = grade("--stage", "0", "--reports-dir", str(tmp_path),
                   env={"PYTEST_ADDOPTS": "-k test_a_sane_incoming_request_id_is_echoed_and_an_insane_one_replaced"})
    card = json.loads((tmp_path / "scorecard.json").read_text(encoding="utf-8"))
    verdicts = {item["id"]: item["verdict"] for item in card["items"]}
    assert verdicts["S0-AC9"] == "PASS" and verdicts["S0-AC7"] == "MISSING", verdicts
    assert result.returncode != 0, "a MISSING item must fail grading"


def test_against_a_target_backend_and_source_checks_are_not_gradable(tmp_path):
    package = StagePackage.load(stage(1).path if stage(1).exists else STAGE0.path)
    number = 1 if stage(1).exists else 0
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    engine = database_engine(url)
    apply_schema(engine)
    engine.dispose()
    process = ServiceProcess(package, env={"DATABASE_URL": url, "JWT_SECRET": "a-target-graded-from-outside-" * 2},
                             port=free_port())
    process.start()
    try:
        chosen = "test_storage or test_layers" if number == 1 else "test_schema or test_tooling"
        result = grade("--stage", str(number), "--target", process.url, "--reports-dir", str(tmp_path),
                       env={"PYTEST_ADDOPTS": f"-k '{chosen}'"})
    finally:
        process.stop()
    card = json.loads((tmp_path / "scorecard.json").read_text(encoding="utf-8"))
    graded = {item["id"]: item for item in card["items"] if item["tests"]}
    assert graded, result.stdout[-2000:]
    for item in graded.values():
        assert item["verdict"] == "NOT GRADABLE", item
        assert any("not gradable against TARGET" in reason for reason in item["reasons"]), item


@pytest.fixture
def proof_suite(tmp_path: Path) -> Path:
    """A tiny suite whose tests fail in each of the ways the proof must tell apart."""
    (tmp_path / "test_proof.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("the previous stage did not start")

        @pytest.mark.check("S9-AC1")
        def test_setup_error(broken):
            assert False

        @pytest.mark.check("S9-AC2")
        def test_crash():
            import no_such_module_here  # noqa: F401

        @pytest.mark.check("S9-AC3")
        def test_assertion():
            assert 1 == 2, "the check itself failed"

        @pytest.mark.check("S9-AC4")
        def test_pytest_fail():
            pytest.fail("the check itself failed")
    '''), encoding="utf-8")
    return tmp_path


def test_the_increment_proof_counts_only_failed_checks(proof_suite):
    outcomes = increment._Outcomes()
    pytest.main([str(proof_suite), "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir", str(proof_suite),
                 "-c", os.devnull, "-W", "ignore::pytest.PytestUnknownMarkWarning"], plugins=[outcomes])
    counted = {result.ids[0]: result.counted for result in outcomes.by_test.values()}
    assert counted == {"S9-AC1": False, "S9-AC2": False, "S9-AC3": True, "S9-AC4": True}


def test_a_stage_with_no_new_items_fails_the_proof(monkeypatch):
    monkeypatch.setattr(increment, "readme_checklist", lambda _stage: Checklist({}, {}))
    assert increment.prove(1) == ["stage1_mvp/README.md lists no new checklist item"]
