"""Probe: two apps built in one process with different settings share nothing, and closing them leaves no thread.

Run as `python two_apps.py <package> <folder>` with the implementation importable and the service's
environment. It relies only on the documented entry points `<package>.producer.create_app()`, which
reads the environment, and `close_app(app)`. App A gets the service's settings; app B, built second,
a database of its own (a new SQLite file in <folder>) and another JWT secret. A user registers on A
only. Prints one JSON object: what each app answered, and the threads still running after both closed.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import uuid
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from common.connections import database_engine
from common.schema import apply_schema

OTHER_SECRET = "a-second-app-has-a-secret-of-its-own-0123456789"


def main(package: str, folder: str) -> None:
    producer = importlib.import_module(f"{package}.producer")
    before = set(threading.enumerate())
    first = producer.create_app()
    other_url = f"sqlite:///{Path(folder).resolve() / 'other.db'}"
    engine = database_engine(other_url)
    apply_schema(engine)
    engine.dispose()
    os.environ.update(DATABASE_URL=other_url, JWT_SECRET=OTHER_SECRET)
    second = producer.create_app()
    a, b = first.test_client(), second.test_client()
    credentials = {"username": f"u{uuid.uuid4().hex[:20]}", "password": f"pw-{uuid.uuid4().hex}"}
    seen: dict[str, object] = {"register_on_a": a.post("/api/v1/users", json=credentials).status_code}
    login = a.post("/api/v1/auth/login", json=credentials)
    seen["login_on_a"] = login.status_code
    seen["login_on_b"] = b.post("/api/v1/auth/login", json=credentials).status_code
    token = (login.get_json() or {}).get("access_token", "")
    seen["list_on_a"] = a.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
    seen["list_on_b_with_a_token"] = b.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
    seen["register_on_b"] = b.post("/api/v1/users", json=credentials).status_code
    producer.close_app(first)
    producer.close_app(second)
    # A stopped thread may take a moment to end (a blocking call returns first); 10 s is generous.
    left = Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.05), retry=retry_if_result(bool),
                    retry_error_callback=lambda state: state.outcome.result())(
        lambda: sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive()))
    seen["threads_left"] = left
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
