"""`make stageN` (the runner), driven as a learner drives it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from common.service import free_port
from common.stages import REPO_ROOT


def processes_serving(port: int) -> list[int]:
    """Pids of live processes started for this port (the runner passes PORT to gunicorn)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"PORT={port}".encode() in environ and state != "Z":
            pids.append(int(entry.name))
    return pids


def run_stage(stage, implementation: Path, tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "common.runner", str(stage.number), "--impl", str(implementation),
               "--port", str(port),
               "--var-dir", str(tmp_path / "var"), "--wait", "1"]
    return subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.check("S0-AC12")
def test_runner_serves_the_stage_prints_the_banner_and_leaves_nothing_on_ctrl_c(stage, implementation, tmp_path):
    port = free_port()
    started = time.monotonic()
    runner = run_stage(stage, implementation, tmp_path, port)
    banner = []
    for line in runner.stdout:  # type: ignore[union-attr]
        banner.append(line)
        if "Ctrl-C" in line:
            break
    up_after = time.monotonic() - started
    text = "".join(banner)
    assert f"http://127.0.0.1:{port}" in text and "database" in text, text
    assert "embedded SQLite" in text or "real" in text
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert up_after < 30, f"took {up_after:.1f} s to come up"
    assert processes_serving(port), "expected gunicorn processes for this port"
    runner.send_signal(signal.SIGINT)
    assert runner.wait(20) == 0
    deadline = time.monotonic() + 5
    while processes_serving(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_serving(port) == [], "processes left behind after Ctrl-C"


@pytest.mark.check("S0-AC12")
def test_runner_reports_a_port_in_use_without_a_traceback(stage, implementation, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        runner = run_stage(stage, implementation, tmp_path, port)
        output, _ = runner.communicate(timeout=30)
    assert runner.returncode == 2
    assert f"port {port}" in output and "already in use" in output
    assert "Traceback" not in output


@pytest.mark.check("S0-AC12")
def test_runner_names_an_unreachable_database_and_how_to_fix_it(stage, implementation, tmp_path):
    dead_port = free_port()
    runner = run_stage(stage, implementation, tmp_path, free_port(),
                       DATABASE_URL=f"mysql+pymysql://someone:secret@127.0.0.1:{dead_port}/nothing")
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 3
    assert "database" in output and str(dead_port) in output and "Fix:" in output
    assert "secret" not in output, "the password must be masked"
    assert "Traceback" not in output
