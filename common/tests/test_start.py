"""`make start`: a learner's attempt at stage N serves stage N's view of the contract."""
from __future__ import annotations

import importlib.util

import pytest

from common.stages import STAGES
from common.tools import start

LATER = [s for s in STAGES if s.number > 0 and s.exists]  # an attempt needs its goal's README and checks


def stage_number_of(package) -> int:
    spec = importlib.util.spec_from_file_location("attempt", package / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NUMBER


@pytest.mark.parametrize("goal", LATER, ids=lambda s: s.folder)
def test_an_attempt_at_stage_n_serves_stage_ns_view(goal, tmp_path, monkeypatch):
    monkeypatch.setattr(start, "WORKSPACE", tmp_path)
    assert stage_number_of(STAGES[goal.number - 1].path) == goal.number - 1
    assert start.main([str(goal.number)]) == 0
    assert stage_number_of(tmp_path / goal.folder) == goal.number


@pytest.mark.parametrize("stage", [s for s in STAGES if s.exists], ids=lambda s: s.folder)
def test_every_stage_package_names_its_own_number(stage):
    assert stage_number_of(stage.path) == stage.number
