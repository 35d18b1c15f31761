"""Logs: readable in dev, flat JSON otherwise, one access line per request, sampled, and never a secret."""
from __future__ import annotations

import json
import uuid

import pytest

from common.service import free_port

REQUIRED = {"ts", "level", "msg", "logger", "request_id"}
ACCESS = {"method", "path", "status", "latency_ms", "user_id", "remote_addr"}


def json_profile(database) -> dict[str, str]:
    """prod where the database allows it; on SQLite (which prod refuses) the test profile, same JSON path."""
    if database.engine.dialect.name == "sqlite":
        return {"APP_ENV": "test", "LOG_FORMAT": "json"}
    return {"APP_ENV": "prod", "JWT_SECRET": "a-production-grade-secret-of-more-than-32-characters"}


def parse_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line[:200]}")
    return parsed


def access_lines(records: list[dict]) -> list[dict]:
    return [r for r in records if r["logger"] == "access"]


def exercise(client, request_ids: list[str]) -> dict:
    """Register, log in, create, read, and make a few errors, each with a known X-Request-ID."""
    def call(method, path, **kwargs):
        rid = f"t-{uuid.uuid4().hex[:12]}"
        request_ids.append(rid)
        response = client.request(method, path, headers={"X-Request-ID": rid, **kwargs.pop("headers", {})},
                                  **kwargs)
        assert response.headers["X-Request-ID"] == rid
        return response

    credentials = {"username": f"u{uuid.uuid4().hex[:12]}", "password": f"pw-{uuid.uuid4().hex}"}
    call("POST", "/api/v1/users", json=credentials)
    token = call("POST", "/api/v1/auth/login", json=credentials).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    task = call("POST", "/api/v1/tasks", json={"type": "t", "payload": {"secret_note": "hi"}}, headers=auth).json()
    call("GET", f"/api/v1/tasks/{task['id']}", headers=auth)
    call("GET", f"/api/v1/tasks/{uuid.uuid4()}", headers=auth)
    call("POST", "/api/v1/auth/login", json={**credentials, "password": "wrong-" + credentials["password"]})
    call("POST", "/api/v1/users", json={**credentials, "password": "x"})  # 400 that echoes nothing
    call("GET", "/api/v1/tasks", headers={"Authorization": f"Bearer {token}tampered"})
    return {"token": token, **credentials}


@pytest.mark.check("S2-AC4")
def test_json_logs_are_flat_one_per_line_with_the_required_fields(launch, database):
    service = launch(json_profile(database))
    request_ids: list[str] = []
    exercise(service.client(), request_ids)
    service.stop()
    records = parse_lines(service.log_text())
    assert records, "nothing was logged"
    for record in records:
        assert REQUIRED <= set(record), record
        assert all(not isinstance(v, (dict, list)) for v in record.values()), f"not flat: {record}"
    for rid in request_ids:
        lines = [r for r in access_lines(records) if r["request_id"] == rid]
        assert len(lines) == 1, f"{rid}: {len(lines)} access lines"
        assert ACCESS <= set(lines[0]) and lines[0]["msg"] == "request"
    statuses = sorted(r["status"] for r in access_lines(records) if r["request_id"] in request_ids)
    assert statuses == [200, 200, 201, 201, 400, 401, 401, 404]
    assert any(r["user_id"] for r in access_lines(records)), "authenticated requests name their user"


@pytest.mark.check("S2-AC5")
def test_sampling_drops_successes_but_never_errors(launch, database):
    service = launch({**json_profile(database), "LOG_SAMPLE_RATE": "0", "LOG_SLOW_REQUEST_MS": "60000"})
    client = service.client()
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-route").status_code == 404
    with database.outage():
        assert client.post("/api/v1/auth/login", json={"username": "someone", "password": "whatever-pw"}
                           ).status_code == 503
    service.stop()
    logged = sorted(r["status"] for r in access_lines(parse_lines(service.log_text())))
    assert logged == [404, 503]


@pytest.mark.check("S2-AC5")
def test_slow_requests_are_logged_whatever_the_sample_rate(launch, database):
    service = launch({**json_profile(database), "LOG_SAMPLE_RATE": "0", "LOG_SLOW_REQUEST_MS": "0"})
    for _ in range(5):
        service.client().get("/healthz")
    service.stop()
    assert len([r for r in access_lines(parse_lines(service.log_text())) if r["path"] == "/healthz"]) >= 5


@pytest.mark.check("S2-AC6")
def test_no_password_token_or_hash_reaches_the_logs(launch, database):
    service = launch({**json_profile(database), "LOG_LEVEL": "DEBUG"})
    request_ids: list[str] = []
    secrets = exercise(service.client(), request_ids)
    service.stop()
    text = service.log_text()
    assert len(access_lines(parse_lines(text))) >= len(request_ids), "the requests were not logged"
    for secret in (secrets["password"], secrets["token"], secrets["token"].split(".")[2], "$argon2"):
        assert secret not in text
    assert service.env["JWT_SECRET"] not in text


@pytest.mark.check("S2-AC6")
def test_a_dsn_password_never_reaches_the_logs(launch, database):
    dsn = f"mysql+pymysql://producer:dsn-pw-{uuid.uuid4().hex}@127.0.0.1:{free_port()}/producer"
    service = launch({**json_profile(database), "APP_ENV": "test", "LOG_FORMAT": "json", "DATABASE_URL": dsn})
    client = service.client()
    assert client.get("/readyz").status_code == 503
    assert client.post("/api/v1/auth/login", json={"username": "someone", "password": "whatever-pw"}
                       ).status_code == 503
    service.stop()
    text = service.log_text()
    assert "dsn-pw-" not in text
    records = parse_lines(text)
    assert any(r["msg"] == "database unavailable" for r in records), "the outage was not logged"
    assert any("producer:***@" in str(r.get("database_url", "")) for r in records), "settings line missing"


REDACTION_PROBE = """
import sys
from loguru import logger
from {package}.producer.config import load_settings
from {package}.producer import logs

logs.configure(load_settings(log_format=sys.argv[1], log_level="DEBUG"))
hash_ = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$ZGlnZXN0ZGlnZXN0ZGlnZXN0"
token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
logger.info("login password=hunter2-secret with Authorization: Basic dXNlcjpodW50ZXI=")
logger.info("stored " + hash_ + " and Bearer " + token)
logger.bind(password="hunter2-secret", jwt_secret="signing-key-secret").info("fields")
logger.info("dsn mysql+pymysql://producer:dsn-secret-pw@db:3306/producer")
try:
    raise RuntimeError("failed with token=" + token)
except RuntimeError:
    logger.exception("boom")
logger.info("forged\\n{{\\"level\\": \\"INFO\\", \\"msg\\": \\"fake\\"}}")
"""
LEAKS = ("hunter2-secret", "c2lnbmF0dXJl", "ZGlnZXN0ZGlnZXN0", "signing-key-secret", "dsn-secret-pw", "dXNlcjpodW50ZXI")


@pytest.mark.check("S2-AC6")
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_redaction_masks_secrets_in_messages_fields_and_tracebacks(implementation, service, log_format):
    """White-box: drive the implementation's own logging set-up with secrets in every place."""
    result = service.run_python(REDACTION_PROBE.format(package=implementation.name), log_format)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "boom" in output and "dsn mysql+pymysql://producer:***@db" in output, output
    for leak in LEAKS:
        assert leak not in output, f"{leak} leaked in {log_format}:\n{output}"
    lines = [line for line in output.splitlines() if line.strip()]
    if log_format == "json":
        records = [json.loads(line) for line in lines]
        assert [r["msg"] for r in records if r["msg"] == "fake"] == [], "a message forged a record"
        assert any(r.get("traceback") for r in records), "the exception's traceback is logged"
    else:
        assert not any(line.startswith("{") for line in lines), "a message forged a line"


@pytest.mark.check("S2-AC7")
def test_gunicorn_and_standard_library_logs_use_the_same_json_sink(launch, database):
    service = launch(json_profile(database))
    service.stop()
    records = parse_lines(service.log_text())
    assert any(r["logger"].startswith("gunicorn") and "Booting worker" in r["msg"] for r in records)
    starting = [r for r in records if r["msg"] == "starting"]
    assert starting and starting[0]["jwt_secret"] == "***", "start-up must log the masked settings"
    assert any(r["msg"] == "shutdown complete" for r in records), "shutdown must be logged"


@pytest.mark.check("S2-AC8")
def test_dev_logs_are_readable_lines_not_json(launch):
    service = launch({"APP_ENV": "dev", "LOG_FORMAT": None})
    service.client().get("/healthz", headers={"X-Request-ID": "dev-probe-1"})
    service.stop()
    lines = [line for line in service.log_text().splitlines() if line.strip()]
    assert lines and not any(line.lstrip().startswith("{") for line in lines)
    access = [line for line in lines if "dev-probe-1" in line]
    assert len(access) == 1 and " INFO " in access[0] and "path=/healthz" in access[0] and "status=200" in access[0]
