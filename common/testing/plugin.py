"""The pytest plugin every stage suite runs under (`-p common.testing.plugin` in pyproject.toml)."""
from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..service import stop_process_groups
from ..stages import NotAStagePackage, Stage, StagePackage, stage_of_path
from .checklist import ChecklistError, check_ids, effective_checklist, readme_checklist
from .harness import ApiClient, Broker, Cache, Database, Harness, RunningService
from .scheduling import StageAffinityScheduling, remember_seconds
from .scorecard import Scorecard

_harness_key = pytest.StashKey[Harness]()
_CHECK_IDS = "check_ids"  # the user property that carries a test's IDs to the xdist controller


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("curriculum", "stage acceptance harness")
    group.addoption("--impl", default=os.environ.get("IMPL") or None,
                    help="serve this stage package instead of the reference (env IMPL)")
    group.addoption("--target", default=os.environ.get("TARGET") or None,
                    help="test the service already running at this URL (env TARGET)")
    group.addoption("--scorecard", action="store_true",
                    help="print the scorecard, write it under reports/, and fail on any FAIL or MISSING item")
    group.addoption("--only-new", action="store_true",
                    help="run only the checks a stage introduces (IDs S<N>-...), for the increment proof")
    group.addoption("--reports-dir", metavar="DIR", help="where the scorecard is written (default: reports/)")
    group.addoption("--collected-checks", metavar="FILE",
                    help="write {test node id: [check IDs]} of every collected stage test to FILE as JSON")


def pytest_configure(config: pytest.Config) -> None:
    # The harness's proxies forward every database and Redis packet from threads of this process; at
    # CPython's default 5 ms switch interval, a test thread that computes delays each packet by as much.
    sys.setswitchinterval(0.0005)
    config.addinivalue_line("markers", "check(id): the acceptance checklist item (e.g. S1-AC3) this test proves")
    if config.getoption("--impl") and config.getoption("--target"):
        raise pytest.UsageError("give IMPL= or TARGET=, not both")
    if config.getoption("--impl"):
        try:
            StagePackage.load(config.getoption("--impl"))
        except NotAStagePackage as exc:
            raise pytest.UsageError(f"IMPL={exc}") from None
    if not hasattr(config, "workerinput"):  # an xdist worker sends its reports to the controller
        config.pluginmanager.register(GradingReporter(config), "curriculum-grading")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` (make test) keeps a worker to the stages it already runs; see scheduling.py."""
    if config.getvalue("dist") != "loadfile":
        return None
    return StageAffinityScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        stage = stage_of_path(item.path)
        ids = check_ids(item)
        if stage is not None and config.getoption("--only-new") and \
                not any(i.startswith(f"S{stage.number}-") for i in ids):
            drop.append(item)
            continue
        item.user_properties.append((_CHECK_IDS, ids))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if path := config.getoption("--collected-checks"):
        found = {item.nodeid: check_ids(item) for item in items if stage_of_path(item.path)}
        Path(path).write_text(json.dumps(found, indent=1), encoding="utf-8")


def checklist_problem(stage: Stage, ids: list[str]) -> str | None:
    """Why a stage test's IDs are wrong for its stage's checklist, or None."""
    if not ids:
        return f"names no checklist item: add @pytest.mark.check('S{stage.number}-ACn')"
    try:
        known, superseded = effective_checklist(stage), readme_checklist(stage).superseded
    except ChecklistError as exc:
        return str(exc)
    for check_id in ids:
        if check_id in superseded:
            return f"names {check_id}, which {stage.folder} supersedes by {superseded[check_id]}"
        if check_id not in known:
            return f"names {check_id}, which {stage.folder}/README.md neither lists nor inherits"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    stage = stage_of_path(item.path)
    if stage is not None and (problem := checklist_problem(stage, check_ids(item))):
        pytest.fail(f"{item.nodeid} {problem}")


class GradingReporter:
    """Scorecard and time per stage, kept where reports arrive (the xdist controller, or the only process)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.scorecard = Scorecard()
        self.stage_seconds: Counter[str] = Counter()
        self.file_seconds: Counter[str] = Counter()  # the next run hands out the longest files first
        self.started = time.monotonic()
        self.expected: set[int] = set()  # stages whose checklist rows the scorecard already holds

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        self.file_seconds[path] += report.duration
        stage = stage_of_path(Path(self.config.rootpath) / path)
        if stage is None:
            return
        self.stage_seconds[stage.folder] += report.duration
        if stage.number not in self.expected:
            try:
                self.scorecard.expect(stage, effective_checklist(stage))
            except ChecklistError:
                return  # the test itself fails at setup, saying why
            self.expected.add(stage.number)
        self.scorecard.record(stage, list(dict(report.user_properties).get(_CHECK_IDS, [])), report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        remember_seconds(self.config, self.file_seconds)
        if self.config.getoption("--scorecard") and exitstatus == 0 and self.scorecard.failed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a MISSING item fails grading too

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.stage_seconds:
            terminalreporter.section("time per stage (sum of test durations)")
            for folder, total in sorted(self.stage_seconds.items()):
                terminalreporter.write_line(f"{folder:<24}{total:8.1f} s")
            terminalreporter.write_line(f"{'all, wall clock':<24}{time.monotonic() - self.started:8.1f} s")
        if not self.config.getoption("--scorecard"):
            return
        terminalreporter.section("scorecard")
        for line in self.scorecard.render_text():
            terminalreporter.write_line(line)
        harness = self.config.stash.get(_harness_key, None)
        context = {"impl": self.config.getoption("--impl"), "target": self.config.getoption("--target"),
                   "backends": harness.describe() if harness else {}}
        reports_dir = Path(self.config.getoption("--reports-dir") or Path(self.config.rootpath) / "reports")
        for path in self.scorecard.write(reports_dir, context=context):
            terminalreporter.write_line(f"written: {path}")


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """Every backend and service this session starts; all stopped when the session ends."""
    instance = Harness(impl=pytestconfig.getoption("--impl"), target=pytestconfig.getoption("--target"),
                       work_dir=tmp_path_factory.mktemp("harness"))
    pytestconfig.stash[_harness_key] = instance
    yield instance
    instance.close()


@pytest.fixture
def stage(request: pytest.FixtureRequest) -> Stage:
    """The stage whose folder holds the requesting test."""
    found = stage_of_path(Path(request.path))
    if found is None:
        pytest.fail(f"{request.node.nodeid} is not inside a stage folder")
    return found


@pytest.fixture
def service(harness: Harness, stage: Stage) -> RunningService:
    """The stage's shared running service (reference, IMPL= package, or TARGET= URL)."""
    return harness.shared_service(stage)


@pytest.fixture
def api(service: RunningService) -> Iterator[ApiClient]:
    """An HTTP client for the shared service."""
    client = service.client()
    yield client
    client.close()


def _needs_access(harness: Harness, what: str) -> None:
    if harness.target:
        pytest.skip(f"not gradable against TARGET: needs {what}")


@pytest.fixture
def database(harness: Harness) -> Database:
    """The services' database, seen directly (SQL), for checks a client cannot make."""
    _needs_access(harness, "database access")
    return harness.database


@pytest.fixture
def cache(harness: Harness) -> Cache:
    """The services' Redis, seen directly (keys, TTLs), with outages and hangs staged through a proxy."""
    _needs_access(harness, "cache access")
    return harness.cache


@pytest.fixture
def broker(harness: Harness, service: RunningService) -> Broker:
    """The shared service's broker, seen directly (topics, offsets), with outages staged through its holder."""
    _needs_access(harness, "broker access")
    assert service.broker is not None, f"stage {service.stage.number} has no broker"
    return service.broker


@pytest.fixture
def implementation(harness: Harness, service: RunningService) -> Path:
    """The folder of the stage package being graded, for checks that read its code."""
    _needs_access(harness, "the implementation's source")
    assert service.package is not None
    return service.package.path


@pytest.fixture
def launch(harness: Harness, stage: Stage) -> Iterator[Callable[..., RunningService]]:
    """Start extra services of this stage with their own settings; each is stopped after the test."""
    _needs_access(harness, "to start its own service")
    started: list[RunningService] = []

    def start(env: dict[str, str | None] | None = None, *, wait: bool = True,
              name: str | None = None) -> RunningService:
        """Start a service; an env value of None removes that variable."""
        service = harness.launch(stage, env=env, wait=wait, name=name)
        started.append(service)
        return service

    yield start
    stop_process_groups([process for service in started for process in service.processes])
