"""A stage's design/walkthrough.md is what its tour prints today: the steps a learner reads are the steps that ran."""
from __future__ import annotations

import difflib
import io

import pytest

from common.stages import built
from common.tour import normalised, run_tour, with_tours


@pytest.mark.parametrize("number", with_tours())
def test_the_walkthrough_is_the_output_of_the_tour_run_again(number):
    target = built(number)
    document = target.path / "design" / "walkthrough.md"
    assert document.is_file(), f"{target.folder} has a tour but no walk-through: make tour STAGE={number} WRITE=1"
    fresh = normalised(run_tour(target, out=io.StringIO()))  # a failed expectation raises TourFailed here
    written = normalised(document.read_text(encoding="utf-8"))
    stale = list(difflib.unified_diff(written.splitlines(), fresh.splitlines(), "written", "run now", lineterm="", n=1))
    assert not stale, (f"{document.name} is stale (make tour STAGE={number} WRITE=1 rewrites it):\n"
                       + "\n".join(stale[:40]))
