"""`make doctor`: Python, the pinned packages and every backend, driven as a learner drives it."""
from __future__ import annotations

import os
import subprocess
import sys

from common.service import free_port
from common.stages import REPO_ROOT


def test_doctor_reports_python_packages_and_every_backend():
    result = subprocess.run([sys.executable, "-m", "common.doctor"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for word in ("python", "packages", "database", "cache", "broker"):
        assert f"] {word}" in result.stdout


def test_doctor_fails_and_names_an_unreachable_backend():
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run([sys.executable, "-m", "common.doctor"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "[FAIL] cache" in result.stdout and "Fix:" in result.stdout
