"""The composition root: each app owns the dependencies it was built with, and closing it closes them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TWO_APPS_PROBE = Path(__file__).parent / "probes" / "two_apps.py"
_observed: dict[Path, dict] = {}  # one probe run per implementation serves the three checks below


@pytest.fixture
def two_apps(implementation, service, tmp_path) -> dict:
    """What two apps of the implementation, built in one process with different settings, answered."""
    if implementation not in _observed:
        result = service.run_probe(TWO_APPS_PROBE, implementation.name, str(tmp_path))
        assert result.returncode == 0, f"the probe failed: {result.stderr[-2000:]}"
        _observed[implementation] = json.loads(result.stdout)
    return _observed[implementation]


@pytest.mark.check("S1-AC18")
def test_two_apps_in_one_process_keep_their_own_database(two_apps):
    assert two_apps["register_on_a"] == 201 and two_apps["login_on_a"] == 200, two_apps
    assert two_apps["list_on_a"] == 200, f"app A lost its user once app B was built: {two_apps}"
    assert two_apps["login_on_b"] == 401, (
        f"app B logged in a user only app A registered: the apps share one database ({two_apps})")
    assert two_apps["register_on_b"] == 201, f"app B's own database refused a new user: {two_apps}"


@pytest.mark.check("S1-AC18")
def test_two_apps_in_one_process_keep_their_own_secret(two_apps):
    assert two_apps["list_on_b_with_a_token"] == 401, (
        f"app B accepted a token app A signed with another secret: the apps share settings ({two_apps})")


@pytest.mark.check("S1-AC18")
def test_closing_both_apps_leaves_no_thread_behind(two_apps):
    assert two_apps["threads_left"] == [], f"threads still running after close_app(): {two_apps['threads_left']}"
