"""The pytest plugin every stage suite runs under (`-p common.testing.plugin` in pyproject.toml)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..stages import NotAStagePackage, Stage, StagePackage, stage_of_path
from .checklist import check_ids, readme_checklist
from .harness import ApiClient, Database, Harness, RunningService
from .scorecard import Scorecard

_harness_key = pytest.StashKey[Harness]()
_scorecard_key = pytest.StashKey[Scorecard]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("curriculum", "stage acceptance harness")
    group.addoption("--impl", default=os.environ.get("IMPL") or None,
                    help="serve this stage package instead of the reference (env IMPL)")
    group.addoption("--target", default=os.environ.get("TARGET") or None,
                    help="test the service already running at this URL (env TARGET)")
    group.addoption("--scorecard", action="store_true", help="print the scorecard and write it under reports/")
    group.addoption("--only-new", action="store_true",
                    help="run only the checks a stage introduces (IDs S<N>-...), for the increment proof")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the acceptance checklist item (e.g. S1-AC3) this test proves")
    if config.getoption("--impl") and config.getoption("--target"):
        raise pytest.UsageError("give IMPL= or TARGET=, not both")
    if config.getoption("--impl"):
        try:
            StagePackage.load(config.getoption("--impl"))
        except NotAStagePackage as exc:
            raise pytest.UsageError(f"IMPL={exc}") from None
    config.stash[_scorecard_key] = Scorecard()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scorecard = config.stash[_scorecard_key]
    keep, drop = [], []
    for item in items:
        stage = stage_of_path(item.path)
        if stage is None:
            keep.append(item)
            continue
        ids = check_ids(item)
        if config.getoption("--only-new") and not any(i.startswith(f"S{stage.number}-") for i in ids):
            drop.append(item)
            continue
        scorecard.expect(stage, readme_checklist(stage.path))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_setup(item: pytest.Item) -> None:
    stage = stage_of_path(item.path)
    if stage is None:
        return
    ids = check_ids(item)
    if not ids:
        pytest.fail(f"{item.nodeid} names no checklist item: add @pytest.mark.check('S{stage.number}-ACn')")
    known = readme_checklist(stage.path)
    unknown = [i for i in ids if i not in known]
    if unknown:
        pytest.fail(f"{item.nodeid} names {', '.join(unknown)}, which {stage.folder}/README.md does not list")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    stage = stage_of_path(item.path)
    if stage is not None:
        item.config.stash[_scorecard_key].record(stage, check_ids(item), report)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # noqa: ARG001
    if config.getoption("--scorecard"):
        harness = config.stash.get(_harness_key, None)
        scorecard = config.stash[_scorecard_key]
        lines = scorecard.render_text()
        terminalreporter.section("scorecard")
        for line in lines:
            terminalreporter.write_line(line)
        written = scorecard.write(Path(config.rootpath) / "reports",
                                  context={"impl": config.getoption("--impl"), "target": config.getoption("--target"),
                                           "backends": harness.describe() if harness else {}})
        for path in written:
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
    for service in started:
        service.stop()
