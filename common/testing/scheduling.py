"""Which test file an xdist worker runs next: `make test`'s `--dist loadfile`, aware of stages and durations."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

from ..stages import stage_of_path

SECONDS_PER_FILE = "curriculum/seconds-per-file"  # pytest's cache (.pytest_cache): each file's time last run
SECONDS_PER_UNTIMED_TEST = 0.5  # a file the cache does not know yet counts by its tests


class StageAffinityScheduling(LoadScopeScheduling):
    """Whole files per worker, as `--dist loadfile`, handed out in a better order for this suite.

    Each worker starts its own shared service of every stage it meets (gunicorn, its workers, a consumer,
    a mock cluster: about a second of CPU), so a worker that asks for work gets a file of a stage it
    already runs, or of no stage (the repository's own tests), while one is left; otherwise a file of the
    stage the fewest workers run. Among those, the file that took longest last run comes first, so that
    the run does not end waiting for one long file.
    """

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        self._root = Path(config.rootpath)
        self._seconds = _remembered(config)
        self._stages: dict[WorkerController, set[int]] = {}
        self._stage_of: dict[str, int | None] = {}  # each file's stage, looked up once (it resolves the path)

    def _assign_work_unit(self, node: WorkerController) -> None:
        served = self._stages.setdefault(node, set())
        workers_per_stage = Counter(number for stages in self._stages.values() for number in stages)

        def preference(scope: str) -> tuple[bool, int, float]:
            stage = self._stage(scope)
            no_start = stage is None or stage in served
            others = 0 if stage is None else workers_per_stage[stage]
            expected = self._seconds.get(scope, SECONDS_PER_UNTIMED_TEST * len(self.workqueue[scope]))
            return no_start, -others, expected

        scope = max(self.workqueue, key=preference)
        work_unit = self.workqueue.pop(scope)
        if (stage := self._stage(scope)) is not None:
            served.add(stage)
        self.assigned_work.setdefault(node, {})[scope] = work_unit
        collection = self.registered_collections[node]
        node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])

    def _stage(self, scope: str) -> int | None:
        if scope not in self._stage_of:
            stage = stage_of_path(self._root / scope)
            self._stage_of[scope] = stage.number if stage else None
        return self._stage_of[scope]


def remember_seconds(config: pytest.Config, seconds: dict[str, float]) -> None:
    """Keep this run's time per file for the next run's order (files this run did not touch keep theirs)."""
    if (cache := getattr(config, "cache", None)) and seconds:
        cache.set(SECONDS_PER_FILE, {**_remembered(config), **{path: round(s, 2) for path, s in seconds.items()}})


def _remembered(config: pytest.Config) -> dict[str, float]:
    """The times the cache holds; nothing under -p no:cacheprovider, or if the entry is not a mapping."""
    stored = config.cache.get(SECONDS_PER_FILE, {}) if getattr(config, "cache", None) else {}
    return stored if isinstance(stored, dict) else {}
