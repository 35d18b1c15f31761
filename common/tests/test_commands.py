"""Every make target that takes a stage answers one this repository lacks in one line naming what it has."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from common.stages import REPO_ROOT, STAGES, here

MISSING = [s.number for s in STAGES if not s.exists][:1]  # the next stage to be built, while there is one
BEYOND = STAGES[-1].number + 1  # no such stage at all
WITHOUT_DLQ = next(s.number for s in STAGES if s.exists and not (s.path / "consumer" / "dlq.py").is_file())
COMMANDS = {
    "stage<N>": lambda n: [f"stage{n}"],
    "start": lambda n: ["start", f"STAGE={n}"],
    "grade": lambda n: ["grade", f"STAGE={n}"],
    "diff": lambda n: ["diff", "FROM=0", f"TO={n}"],
    "bench": lambda n: ["bench", f"STAGE={n}"],
    "bench-instructions": lambda n: ["bench-instructions", f"STAGE={n}"],
    "dlq": lambda n: ["dlq", f"STAGE={n}", "ARGS=list"],
    "tour": lambda n: ["tour", f"STAGE={n}"],
    "trace": lambda n: ["trace", f"STAGE={n}", "ID=0af7651916cd43dd8448eb211c80319c"],
    "panels": lambda n: ["panels", f"STAGE={n}"],
    "drill": lambda n: ["drill", f"STAGE={n}", "SCENARIO=penetration"],
}


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MAKEFLAGS": ""})


def own_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command printed, without make's own trailer ("make: *** [Makefile:N: target] Error 2", or
    "make[1]: ..." when the tests themselves run under make)."""
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and not re.match(r"make(\[\d+\])?: \*\*\* \[", line)]


@pytest.mark.parametrize(("command", "number"), [(c, n) for c in COMMANDS for n in [*MISSING, BEYOND]],
                         ids=lambda value: str(value))
def test_a_stage_the_repository_lacks_gets_one_line_naming_the_stages_it_has(command, number):
    result = make(*COMMANDS[command](number))
    lines = own_lines(result)
    assert result.returncode != 0, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    named = "stages with one here: " if command in ("dlq", "trace") else f"stages here: {here()}"
    assert re.search(rf"\bstage {number}\b", lines[0]) and named in lines[0], lines[0]
    if command == "start" and number in MISSING:  # an attempt at a stage with no goals or checks is no attempt
        assert not (REPO_ROOT / "workspace" / STAGES[number].folder).exists(), "start copied an attempt anyway"


def test_dlq_on_a_stage_without_the_tool_names_the_stages_with_it():
    lines = own_lines(make("dlq", f"STAGE={WITHOUT_DLQ}", "ARGS=list"))
    assert len(lines) == 1 and f"stage {WITHOUT_DLQ} has no dead-letter tool" in lines[0], lines


def test_start_at_stage_0_says_there_is_nothing_before_it():
    lines = own_lines(make("start", "STAGE=0"))
    assert len(lines) == 1 and "stage 0 has none" in lines[0], lines


def test_help_lists_stage_n_and_every_documented_target():
    listed = make("help").stdout
    assert "make stage<N>" in listed
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^([a-z][a-z0-9-]*):.*## ", makefile, re.MULTILINE):
        assert f"make {target} " in listed, f"make help does not list {target}"
