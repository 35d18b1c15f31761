"""The repository's own rules: checklists and tests in step, fresh diffs, carried fixes, pinned deps."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import requests

from common.service import ServiceProcess, free_port
from common.stages import REPO_ROOT, STAGES, StagePackage
from common.testing.checklist import effective_checklist, readme_checklist
from common.tools import diffs, start

PRESENT = [s for s in STAGES if s.exists]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, **kwargs)


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> dict[str, list[str]]:
    """{node id: check IDs} of every stage test pytest collects (not what the source text mentions)."""
    out = tmp_path_factory.mktemp("collect") / "checks.json"
    result = run("-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                 f"--collected-checks={out}", *[str(s.path / "tests") for s in PRESENT])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("stage", PRESENT, ids=lambda s: s.folder)
def test_every_checklist_item_has_a_collected_test_and_every_test_names_a_graded_item(stage, collected):
    own, graded = readme_checklist(stage), effective_checklist(stage)
    assert own.own, f"{stage.folder}/README.md lists no item of its own"
    tests = {node: ids for node, ids in collected.items() if node.startswith(f"{stage.folder}/")}
    assert all(tests.values()), f"tests naming no item: {[n for n, ids in tests.items() if not ids]}"
    named = {i for ids in tests.values() for i in ids}
    untested = sorted(set(graded) - named, key=lambda i: graded[i].sort_key)
    assert not untested, (f"{stage.folder}: items with no collected test: {untested} "
                          "(carry the earlier stage's test, or supersede the item in the README)")
    assert not named - set(graded), f"tests naming IDs the stage does not grade: {sorted(named - set(graded))}"


@pytest.mark.parametrize("stage", PRESENT, ids=lambda s: s.folder)
def test_stage_readme_keeps_both_titles_and_the_go_map(stage):
    readme = (stage.path / "README.md").read_text(encoding="utf-8")
    assert stage.title_zh in readme.splitlines()[0]
    for heading in ("## Acceptance checklist", "## Code reading", "## From the original Go layout", "<details>"):
        assert heading in readme, f"{stage.folder}/README.md lacks {heading}"


def test_every_changes_diff_is_fresh():
    result = run("-m", "common.tools.diffs", "--check")
    assert result.returncode == 0, f"run `make diffs`:\n{result.stdout}"


def test_stage_diffs_open_with_a_diffstat_and_show_code_before_tests_and_docs():
    for old, new in diffs.consecutive_pairs():
        lines = diffs.stage_diff(old, new).splitlines()
        files = [line[6:] for line in lines if line.startswith("+++ b/") or line.startswith("--- a/")]
        kinds = [diffs.kind_of(name) for name in files]
        assert kinds == sorted(kinds, key=("code", "tests", "docs").index), f"{new.folder}: {kinds}"
        first = next((i for i, line in enumerate(lines) if line.startswith(("--- ", "+++ "))), 0)
        assert lines[2].endswith("then tests, then docs.") and first < 60, f"{new.folder}: first change at line {first}"


def test_consecutive_stage_diffs_keep_file_paths():
    """Nothing is moved or renamed: a later stage holds every file of the stage before it."""
    for old, new in diffs.consecutive_pairs():
        gone = set(diffs.stage_files(old.path)) - set(diffs.stage_files(new.path))
        assert not gone, f"{new.folder} lost {sorted(gone)}"


@pytest.mark.parametrize("stage", PRESENT[1:], ids=lambda s: s.folder)
def test_each_stage_diff_opens_its_code_in_the_declared_reading_order(stage):
    order = diffs.reading_order(stage)
    assert order, f"{stage.folder}/{diffs.ORDER_NAME} declares no reading order"
    stat = [line[4:].split("|")[0].strip() for line in (stage.path / diffs.DIFF_NAME).read_text().splitlines()
            if re.match(r"^#   \S+\s+\|", line)]
    unchanged = [name for name in order if name not in stat]
    assert not unchanged, f"{diffs.ORDER_NAME} names files this stage does not change: {unchanged}"
    assert stat[:len(order)] == order, f"the diff's code opens with {stat[:len(order)]}, not {order}"


def test_fixes_were_carried_into_later_stages():
    result = run("-m", "common.tools.propagate", "--check")
    assert result.returncode == 0, result.stdout


def test_stage_code_imports_its_own_modules_relatively():
    absolute = re.compile(r"^\s*(from|import)\s+stage\d+_", re.MULTILINE)
    for stage in PRESENT:
        for path in stage.path.rglob("*.py"):
            assert not absolute.search(path.read_text(encoding="utf-8")), f"{path} imports a stage by name"


def test_direct_dependencies_are_pinned_and_locked():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    lock = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").lower()
    for requirement in wanted:
        name, _, version = re.sub(r"\[.*\]", "", requirement).partition("==")
        assert version, f"{requirement} is not pinned with =="
        assert f"{name.lower()}=={version}" in lock.replace("_", "-"), f"{requirement} not in requirements.lock"


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make test" in ci


def test_grade_refuses_an_impl_that_is_not_a_stage_package(tmp_path):
    result = run("-m", "common.testing.grade", "--stage", "0", "--impl", str(tmp_path))
    assert result.returncode != 0
    assert "not a stage package" in result.stdout + result.stderr


def test_start_copies_the_previous_stage_without_its_tests(tmp_path, monkeypatch):
    monkeypatch.setattr(start, "WORKSPACE", tmp_path)
    later = next((s for s in PRESENT if s.number > 0), None)
    if later is None:
        pytest.skip("only stage 0 exists")
    assert start.main([str(later.number)]) == 0
    copied = tmp_path / later.folder
    assert (copied / "producer" / "__init__.py").is_file() and not (copied / "tests").exists()
    assert start.main([str(later.number)]) == 2, "must refuse to overwrite an attempt"


def test_a_learner_package_is_served_even_when_it_shares_the_reference_name(tmp_path):
    """workspace/stage1_mvp (a copy of stage 0) must not be shadowed by the reference stage1_mvp."""
    later = next((s for s in PRESENT if s.number > 0), None)
    if later is None:
        pytest.skip("only stage 0 exists")
    copy = tmp_path / later.folder
    shutil.copytree(REPO_ROOT / "stage0_alignment", copy, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    db = tmp_path / "db.sqlite3"
    process = ServiceProcess(StagePackage.load(copy), env={"DATABASE_URL": f"sqlite:///{db}"}, port=free_port())
    try:
        process.start()
        # Stage 0 has no users route: a 404 proves the copy is served, not the reference.
        assert requests.post(f"{process.url}/api/v1/users", json={}, timeout=5).status_code == 404
    finally:
        process.stop()
