"""Settings are read from the environment, checked at start-up, and refuse unsafe production values."""
from __future__ import annotations

import subprocess

import pytest
import requests
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

SAFE_SECRET = "a-production-grade-secret-of-more-than-32-characters"
# Long enough for every profile's own check (16), too short for prod (32): only the production rule can refuse it.
SHORT_PROD_SECRET = "only-23-characters-long"


def start_and_expect_exit(launch, env: dict[str, str | None]) -> list[str]:
    """Start a service that must refuse its settings; return its non-empty output lines."""
    service = launch(env, wait=False, name="settings")
    # The settings check takes milliseconds; 15 s allows for a loaded machine. A service that answers
    # /healthz has accepted the settings: that fails at once instead of waiting out the limit.
    outcome = Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.1), retry=retry_if_result(lambda o: o is None),
                       retry_error_callback=lambda _: None)(stopped_or_serving, service)
    output = service.log_text()
    assert outcome is not None, f"the service neither stopped nor served within 15 s:\n{output}"
    assert outcome != "serving", f"the service accepted these settings and serves:\n{output}"
    assert outcome == 2, f"exit code {outcome}, expected 2:\n{output}"
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if line.strip()]


def stopped_or_serving(service) -> int | str | None:
    """The exit code once the service stopped, "serving" once it answers /healthz, else None."""
    try:
        return service.wait_exit(0.05)
    except subprocess.TimeoutExpired:
        pass
    try:
        return "serving" if requests.get(f"{service.url}/healthz", timeout=0.5).status_code == 200 else None
    except requests.RequestException:
        return None


def lines_naming(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if name in line]


@pytest.mark.check("S2-AC1")
@pytest.mark.parametrize("name", ["DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"])
def test_a_missing_required_setting_stops_the_start_naming_it(launch, name):
    lines = start_and_expect_exit(launch, {name: None})
    assert len(lines_naming(lines, name)) == 1, "one line must name the missing variable:\n" + "\n".join(lines)


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
    ("PASSWORD_HASH_PROFILE", "md5"),
    ("JWT_SECRET", ""),
])
def test_a_malformed_setting_stops_the_start_naming_it(launch, name, value):
    lines = start_and_expect_exit(launch, {name: value})
    named = lines_naming(lines, name)
    assert len(named) == 1, "one line must name the malformed variable:\n" + "\n".join(lines)
    # "What is wrong" is free text; it must at least say something beyond the variable's name.
    assert any(word.isalpha() and len(word) > 2 for word in named[0].replace(name, " ").split()), named[0]


@pytest.mark.check("S2-AC3")
@pytest.mark.parametrize("env,name", [
    ({"JWT_SECRET": None}, "JWT_SECRET"),
    ({"JWT_SECRET": SHORT_PROD_SECRET}, "JWT_SECRET"),
    ({"DATABASE_URL": "sqlite:////tmp/prod.sqlite3"}, "DATABASE_URL"),
    ({"DEBUG": "true"}, "DEBUG"),
    ({"PASSWORD_HASH_PROFILE": "cheapest"}, "PASSWORD_HASH_PROFILE"),
], ids=["default-secret", "short-secret", "sqlite", "debug", "cheap-password-hash"])
def test_prod_refuses_insecure_defaults(launch, env, name):
    base = {"APP_ENV": "prod", "JWT_SECRET": SAFE_SECRET, "PASSWORD_HASH_PROFILE": None,
            "DATABASE_URL": "mysql+pymysql://producer:pw@127.0.0.1:3306/producer"}
    lines = start_and_expect_exit(launch, {**base, **env})
    assert lines_naming(lines, name), f"{name} is not named:\n" + "\n".join(lines)
    text = "\n".join(lines)
    assert SAFE_SECRET not in text and SHORT_PROD_SECRET not in text, "a secret was echoed"


@pytest.mark.check("S2-AC3")
def test_the_same_insecure_values_are_accepted_in_dev(launch):
    service = launch({"APP_ENV": "dev", "JWT_SECRET": None, "DEBUG": "false"})
    with service.client() as client:
        assert client.get("/healthz").status_code == 200
