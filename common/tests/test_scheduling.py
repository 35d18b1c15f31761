"""make test's scheduler: a worker keeps to the stages it runs, and takes the longest file first."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from common.stages import REPO_ROOT
from common.testing.scheduling import SECONDS_PER_FILE, StageAffinityScheduling, remember_seconds


class Cache:
    """pytest's cache, in memory."""

    def __init__(self, values: dict | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key, default):
        return self.values.get(key, default)

    def set(self, key, value) -> None:
        self.values[key] = value


class Worker:
    """An xdist worker as the scheduler sees it: it is sent tests by their index in the collection."""

    def __init__(self, name: str) -> None:
        self.gateway, self.shutting_down, self.sent = SimpleNamespace(id=name), False, []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent += indexes

    def shutdown(self) -> None:
        self.shutting_down = True


def files_given(seconds: dict[str, float], tests: dict[str, int], workers: int = 2) -> list[list[str]]:
    """The files each worker is handed when scheduling starts, in the order handed (a second file only
    while the first holds two tests or fewer, as xdist's loadfile does)."""
    config = SimpleNamespace(rootpath=REPO_ROOT, cache=Cache({SECONDS_PER_FILE: seconds}),
                             option=SimpleNamespace(loadscopereorder=True),
                             getvalue=lambda name: {"tx": [f"{workers}*popen"]}[name])
    collection = [f"{path}::test_{n}" for path, count in tests.items() for n in range(count)]
    scheduler, nodes = StageAffinityScheduling(config), [Worker(f"gw{n}") for n in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    return [list(dict.fromkeys(collection[i].split("::")[0] for i in node.sent)) for node in nodes]


S3, S4 = "stage3_cache/tests/test_{}.py", "stage4_kafka/tests/test_{}.py"


def test_a_worker_keeps_to_its_stage_and_takes_the_longest_file_first():
    seconds = {S4.format("short"): 5, S3.format("one"): 10, S4.format("mid"): 20, S4.format("long"): 40}
    first, second = files_given(seconds, {path: 1 for path in seconds})
    assert first == [S4.format("long"), S4.format("mid")]
    # The second worker starts the stage no one runs, though its file is shorter than stage 4's next one.
    assert second[0] == S3.format("one")


def test_files_without_a_time_yet_count_by_their_tests():
    tests = {S4.format("few"): 2, S4.format("many"): 30, S4.format("some"): 10}
    first, second = files_given({}, tests)
    assert (first, second) == ([S4.format("many")], [S4.format("some")])


def test_files_outside_the_stages_start_nothing_and_go_first_by_length():
    seconds = {"common/tests/test_tour.py": 24, S4.format("a"): 30, S3.format("b"): 28}
    first, second = files_given(seconds, {path: 1 for path in seconds})
    assert first[0] == "common/tests/test_tour.py"
    assert {first[1], second[0]} == {S4.format("a"), S3.format("b")}


def test_a_run_keeps_its_times_and_the_others_from_before():
    config = SimpleNamespace(cache=Cache({SECONDS_PER_FILE: {"a.py": 1.0, "b.py": 2.0}}))
    remember_seconds(config, {"b.py": 3.456})
    assert config.cache.values[SECONDS_PER_FILE] == {"a.py": 1.0, "b.py": 3.46}


@pytest.mark.parametrize("stored", [None, "garbage", ["a.py"]])
def test_a_cache_without_usable_times_is_ignored(stored):
    tests = {S4.format("few"): 2, S4.format("many"): 30}
    config = SimpleNamespace(rootpath=REPO_ROOT, cache=Cache({SECONDS_PER_FILE: stored}),
                             option=SimpleNamespace(loadscopereorder=True), getvalue=lambda name: ["1*popen"])
    assert StageAffinityScheduling(config)._seconds == {}
    assert files_given({}, tests, workers=1) == [[S4.format("many")]]
