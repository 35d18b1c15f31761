"""Settings are read from the environment, checked at start-up, and refuse unsafe production values."""
from __future__ import annotations

import re

import pytest

SAFE_SECRET = "a-production-grade-secret-of-more-than-32-characters"


def start_and_expect_exit(launch, env: dict[str, str | None]) -> str:
    service = launch(env, wait=False, name="settings")
    code = service.wait_exit(15)  # the settings check takes milliseconds; 15 s allows for a loaded machine
    output = service.log_text()
    assert code == 2, f"exit code {code}, expected 2:\n{output}"
    assert "Traceback" not in output, output
    return output


@pytest.mark.check("S2-AC1")
def test_a_missing_required_setting_stops_the_start_naming_it(launch):
    output = start_and_expect_exit(launch, {"DATABASE_URL": None})
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == ["configuration error: DATABASE_URL is required but not set"], output


@pytest.mark.check("S2-AC2")
@pytest.mark.parametrize("name,value", [
    ("APP_ENV", "staging"),
    ("ACCESS_TOKEN_TTL_SECONDS", "soon"),
    ("ACCESS_TOKEN_TTL_SECONDS", "5"),
    ("LOG_SAMPLE_RATE", "1.5"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("DEBUG", "maybe"),
    ("DATABASE_URL", "not a url"),
    ("JWT_SECRET", ""),
])
def test_a_malformed_setting_stops_the_start_naming_it(launch, name, value):
    output = start_and_expect_exit(launch, {name: value})
    assert re.match(f"configuration error: {name} is (invalid|too short)", output), output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.check("S2-AC3")
@pytest.mark.parametrize("env,name", [
    ({"JWT_SECRET": None}, "JWT_SECRET"),
    ({"JWT_SECRET": "short-secret"}, "JWT_SECRET"),
    ({"DATABASE_URL": "sqlite:////tmp/prod.sqlite3"}, "DATABASE_URL"),
    ({"DEBUG": "true"}, "DEBUG"),
], ids=["default-secret", "short-secret", "sqlite", "debug"])
def test_prod_refuses_insecure_defaults(launch, env, name):
    base = {"APP_ENV": "prod", "JWT_SECRET": SAFE_SECRET,
            "DATABASE_URL": "mysql+pymysql://producer:pw@127.0.0.1:3306/producer"}
    output = start_and_expect_exit(launch, {**base, **env})
    named = [line for line in output.splitlines() if line.startswith("configuration error:")]
    assert named == [line for line in named if f" {name} " in line] and named, output
    assert SAFE_SECRET not in output and "short-secret" not in output, "a secret was echoed"


@pytest.mark.check("S2-AC3")
def test_the_same_insecure_values_are_accepted_in_dev(launch):
    service = launch({"APP_ENV": "dev", "JWT_SECRET": None, "DEBUG": "false"})
    assert service.client().get("/healthz").status_code == 200
