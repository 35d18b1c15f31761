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
from tenacity import Retrying, stop_after_delay, wait_fixed

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


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of `pid` (pid -> command line), found through the parent links in /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry.name)], commands[int(entry.name)] = int(fields[1]), command
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child in [p for p, pp in parents.items() if pp == parent]:
            found[child] = commands[child]
            frontier.append(child)
    return found


def alive(pids) -> list[int]:
    """Those of `pids` still running (a zombie has stopped: it only waits to be reaped)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


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
    started_here = descendants(runner.pid)
    if "broker" in stage.backends:
        broker = [line for line in banner if line.strip().startswith("broker")]
        real_kafka = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip())
        assert broker and ("real" if real_kafka else "in memory") in broker[0], f"the banner's broker line:\n{text}"
        assert [line for line in banner if line.strip().startswith("consumer")], f"the banner names no consumer:\n{text}"
        assert "LOG_LEVEL=DEBUG" in text, f"the banner does not say where the Kafka clients' full log goes:\n{text}"
        assert [c for c in started_here.values() if f"-m {implementation.name}.consumer" in c], \
            f"no consumer runs beside gunicorn: {sorted(started_here.values())}"
        if not real_kafka:
            assert [c for c in started_here.values() if "common.broker" in c and "serve" in c], \
                f"no embedded broker (mock-cluster holder) runs: {sorted(started_here.values())}"
    runner.send_signal(signal.SIGINT)
    assert runner.wait(20) == 0
    for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            assert processes_serving(port) == [], "processes left behind after Ctrl-C"
            left = {pid: started_here[pid] for pid in alive(started_here)}
            assert not left, f"processes left behind after Ctrl-C (consumer, broker holder, workers): {left}"


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
