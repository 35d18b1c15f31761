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
        # A probe that cannot run (no close_app, say) fails each check below, rather than erroring here.
        _observed[implementation] = (json.loads(result.stdout) if result.returncode == 0
                                     else {"probe failed": result.stderr[-2000:]})
    return _observed[implementation]


def answered(two_apps: dict) -> dict:
    assert "probe failed" not in two_apps, f"the probe failed: {two_apps.get('probe failed')}"
    return two_apps


@pytest.mark.check("S1-AC18")
def test_two_apps_in_one_process_keep_their_own_database(two_apps):
    seen = answered(two_apps)
    assert seen["register_on_a"] == 201 and seen["login_on_a"] == 200, seen
    assert seen["list_on_a"] == 200, f"app A lost its user once app B was built: {seen}"
    assert seen["login_on_b"] == 401, (
        f"app B logged in a user only app A registered: the apps share one database ({seen})")
    assert seen["register_on_b"] == 201, f"app B's own database refused a new user: {seen}"


@pytest.mark.check("S1-AC18")
def test_two_apps_in_one_process_keep_their_own_secret(two_apps):
    seen = answered(two_apps)
    assert seen["list_on_b_with_a_token"] == 401, (
        f"app B accepted a token app A signed with another secret: the apps share settings ({seen})")


@pytest.mark.check("S1-AC18")
def test_closing_both_apps_leaves_no_thread_behind(two_apps):
    seen = answered(two_apps)
    assert seen["threads_left"] == [], f"threads still running after close_app(): {seen['threads_left']}"
