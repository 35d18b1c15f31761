"""The harness's fork server starts `python -m module` as a fresh interpreter would, in a session of its own."""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from common.testing.forks import ForkServer

PROBE = """\
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "setting": os.environ.get("PROBE_SETTING"),
                  "leaked": os.environ.get("PROBE_LEAKED"), "path": sys.path[:2],
                  "session": os.getsid(0) == os.getpid(),
                  "stages": sorted(name for name in sys.modules if name.startswith("stage"))}))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture(scope="module")
def forks() -> ForkServer:
    """One fork server for the module, as the harness keeps one per test worker."""
    return ForkServer()


@pytest.fixture
def probe_dir(tmp_path, monkeypatch):
    """A folder holding the probe module; the test process has a variable the probe must not see."""
    (tmp_path / "probe_mod.py").write_text(PROBE, encoding="utf-8")
    monkeypatch.setenv("PROBE_LEAKED", "yes")
    return tmp_path


def test_a_fork_runs_the_module_with_its_own_arguments_environment_directory_and_path(forks, probe_dir, tmp_path):
    log = (tmp_path / "probe.log").open("w", encoding="utf-8")
    env = {"PROBE_SETTING": "42", "PROBE_EXIT": "3", "PYTHONPATH": "/nowhere"}
    process = forks.spawn([sys.executable, "-m", "probe_mod", "--flag", "value"], env=env, cwd=probe_dir, output=log)
    assert process.wait(30) == 3 and process.returncode == 3
    seen = json.loads((tmp_path / "probe.log").read_text(encoding="utf-8"))
    assert seen == {"argv": ["--flag", "value"], "cwd": str(probe_dir), "setting": "42", "leaked": None,
                    "path": [str(probe_dir), "/nowhere"], "session": True, "stages": []}


def test_a_fork_leads_its_own_group_as_soon_as_spawn_returns(forks, probe_dir, tmp_path):
    """A drill may SIGKILL the group at once (S4-AC8 kills the consumer right after starting it)."""
    (probe_dir / "probe_wait.py").write_text("import time\ntime.sleep(60)\n", encoding="utf-8")
    process = forks.spawn([sys.executable, "-m", "probe_wait"], env={}, cwd=probe_dir, output=None)
    assert os.getpgid(process.pid) == process.pid
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL
    assert process.poll() == -signal.SIGKILL
    process.send_signal(signal.SIGTERM)  # stopped already: nothing to signal, and no error
