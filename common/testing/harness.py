"""Start stage services and backends for the acceptance tests, and observe them."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from sqlalchemy import Engine, make_url
from tenacity import Retrying, stop_after_delay, wait_fixed

from ..backends import ENV_VARS, Backend, BackendUnavailable, EmbeddedBroker
from ..connections import database_engine
from ..broker import BrokerControl, committed_offsets, end_offsets
from ..runner import prepare_backends
from ..service import (ConsumerProcess, Process, ServiceFailed, ServiceProcess, Spawn, free_port, package_pythonpath,
                       popen, stop_process_groups)
from ..stages import Stage, StagePackage
from . import forks
from .chaos import MysqlQueryLog, TcpProxy


class ApiClient(requests.Session):
    """A requests session bound to one base URL, with a default timeout."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        super().__init__()
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, self.base_url + url if url.startswith("/") else url, *args, **kwargs)


@dataclass
class Database:
    """The database the services under test use, seen from the test process."""

    backend: Backend
    proxy: TcpProxy | None = None
    query_log: MysqlQueryLog | None = None
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = database_engine(self.backend.url)

    @property
    def service_url(self) -> str:
        """The URL a service should use: through the proxy where there is one, so outages can be staged."""
        if not self.proxy:
            return self.backend.url
        url = make_url(self.backend.url).set(host="127.0.0.1", port=self.proxy.port)
        return url.render_as_string(hide_password=False)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Make the database unreachable for the services, then bring it back.

        Only a networked database can be taken away: a service keeps an open SQLite file whatever
        happens to it (a lock fails table reads but not `SELECT 1`), so on SQLite the check is
        reported as not gradable rather than graded on a half-outage.
        """
        if not self.proxy:
            pytest.skip("not gradable on embedded SQLite: a file database cannot be taken away from a running "
                        "service; graded where DATABASE_URL is MySQL/MariaDB (as in CI)")
        with self.proxy.cut_off():
            yield

    @contextlib.contextmanager
    def slow(self, ms: int) -> Iterator[None]:
        """Make every statement the services send answer `ms` late, then bring the pace back (MySQL/MariaDB only)."""
        if not self.proxy:
            pytest.skip("not gradable on embedded SQLite: a file database has no connection to slow down; graded "
                        "where DATABASE_URL is MySQL/MariaDB (as in CI)")
        with self.proxy.slowed(ms):
            yield

    @contextlib.contextmanager
    def queries(self) -> Iterator["Statements"]:
        """Record the SQL statements the services send while the block runs, read off the wire."""
        if not self.query_log:
            yield Statements(None)
            return
        with self.query_log.recording() as recorded:
            yield Statements(recorded)


class Statements:
    """What `Database.queries()` recorded; on embedded SQLite nothing can be, and asking skips the check."""

    def __init__(self, recorded: list[str] | None) -> None:
        self._recorded = recorded

    def matching(self, pattern: str) -> list[str]:
        """The statements that match a regular expression (case-insensitive)."""
        if self._recorded is None:
            pytest.skip("not gradable on embedded SQLite: the statements a service sends to a file database "
                        "cannot be counted from outside; graded where DATABASE_URL is MySQL/MariaDB (as in CI)")
        return [s for s in list(self._recorded) if re.search(pattern, s, re.IGNORECASE | re.DOTALL)]


@dataclass
class Cache:
    """The Redis the services under test use (real or embedded), seen from the test process.

    The services reach it through a proxy, so an outage or a hang can be staged for them without
    touching the server; `client` talks to the server directly and answers as text.
    """

    backend: Backend
    proxy: TcpProxy
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.backend.url, decode_responses=True, socket_timeout=5)

    @property
    def service_url(self) -> str:
        """The backend's URL (credentials and database number kept) with the proxy as host and port."""
        parts = urlsplit(self.backend.url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return parts._replace(netloc=f"{netloc}127.0.0.1:{self.proxy.port}").geturl()

    def outage(self) -> contextlib.AbstractContextManager[None]:
        """Make Redis unreachable for the services (connections dropped, new ones refused), then bring it back."""
        return self.proxy.cut_off()

    def hang(self) -> contextlib.AbstractContextManager[None]:
        """Make Redis accept connections and commands but never answer, then let everything through again."""
        return self.proxy.hung()


@dataclass(frozen=True)
class Message:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


@dataclass
class Broker:
    """The Kafka a service under test publishes to, seen from the test process.

    Each service the harness starts gets its own embedded mock cluster, so topics, consumer groups
    and dead letters of one test never leak into another; `control` is None on real Kafka, which
    cannot be taken down from here.
    """

    bootstrap: str
    control: BrokerControl | None = None

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Take every broker down (connections dropped, new ones refused), then bring them back."""
        if self.control is None:
            pytest.skip("not gradable on real Kafka: a shared cluster cannot be taken down from the tests; "
                        "graded on the embedded mock cluster (as in CI)")
        self.control.down()
        try:
            yield
        finally:
            self.control.up()

    @contextlib.contextmanager
    def slow(self, ms: int) -> Iterator[None]:
        """Delay every broker answer by `ms` milliseconds while the block runs."""
        if self.control is None:
            pytest.skip("not gradable on real Kafka: latency can only be added to the embedded mock cluster")
        self.control.rtt(ms)
        try:
            yield
        finally:
            self.control.rtt(0)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return end_offsets(self.bootstrap, topic)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return committed_offsets(self.bootstrap, group, topic)

    def wait_drained(self, group: str, topic: str, *, seconds: float = 30) -> None:
        """Poll until `group` has committed every message now on `topic` (the consumer has landed them)."""
        target = self.end_offsets(topic)
        for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                committed = self.committed(group, topic)
                behind = {p: end - max(committed.get(p, 0), 0) for p, end in target.items()
                          if max(committed.get(p, 0), 0) < end}
                assert not behind, f"group {group} is still behind on {topic}: {behind} messages per partition"

    def read(self, topic: str, *, start: dict[int, int] | None = None, timeout: float = 10) -> list[Message]:
        """Every message of `topic` from `start` ({partition: offset}; default: the beginning) up to its end now.

        Reads with no consumer group, so it changes nobody's committed offsets.
        """
        from confluent_kafka import Consumer, TopicPartition

        ends = self.end_offsets(topic)
        start = start or {}
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "harness-reader",
                             "enable.auto.commit": False, "log_level": 3})
        try:
            wanted = {p: end for p, end in ends.items() if start.get(p, 0) < end}
            consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
            found: list[Message] = []
            deadline = time.monotonic() + timeout
            while wanted and time.monotonic() < deadline:
                record = consumer.poll(0.2)
                if record is None or record.error():
                    continue
                found.append(Message(record.topic(), record.partition(), record.offset(), record.key(),
                                     record.value(), {k: v for k, v in (record.headers() or [])}))
                if record.offset() + 1 >= wanted.get(record.partition(), 0):
                    wanted.pop(record.partition(), None)
            return sorted(found, key=lambda m: (m.partition, m.offset))
        finally:
            consumer.close()


@dataclass
class RunningService:
    """A stage service the tests talk to: started here, or an external TARGET."""

    url: str
    stage: Stage
    package: StagePackage | None = None
    process: ServiceProcess | None = None
    log_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    broker: Broker | None = None
    consumer: ConsumerProcess | None = None
    consumer_log: Path | None = None
    spawn: Spawn = popen

    def start_consumer(self) -> ConsumerProcess:
        """Start (or restart) this service's consumer with the service's settings."""
        assert self.package is not None and self.package.consumer_module, "this service has no consumer"
        output = (self.consumer_log or Path("/dev/null")).open("a", encoding="utf-8")
        self.consumer = ConsumerProcess(self.package, env=dict(self.env), output=output, spawn=self.spawn).start()
        output.close()  # the child holds its own descriptor
        return self.consumer

    def kill_consumer(self) -> None:
        """SIGKILL the consumer, as a crash would."""
        if self.consumer:
            self.consumer.kill()

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for a service that is expected to stop by itself; return its exit code."""
        assert self.process is not None and self.process.process is not None
        return self.process.process.wait(timeout)

    def run_probe(self, probe: Path, *args: str, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a probe script in a fresh interpreter that imports this implementation, with this service's env."""
        assert self.package is not None, "needs the implementation, not a TARGET"
        full_env = {**os.environ, **self.env, **(env or {}), "PYTHONPATH": package_pythonpath(self.package)}
        return subprocess.run([sys.executable, str(probe), *args], env=full_env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.package.path.parent)

    def client(self) -> ApiClient:
        return ApiClient(self.url)

    def log_text(self) -> str:
        """Everything the service printed so far."""
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file else ""

    def consumer_log_text(self) -> str:
        """Everything the consumer printed so far."""
        return self.consumer_log.read_text(encoding="utf-8", errors="replace") if self.consumer_log else ""

    @property
    def processes(self) -> list[Process]:
        """The process groups this service runs: gunicorn's, and the consumer's where it has one."""
        return [p.process for p in (self.process, self.consumer) if p is not None and p.process is not None]

    def stop(self) -> int | None:
        """Stop gunicorn and the consumer together; gunicorn's exit code."""
        stop_process_groups(self.processes)
        return self.process.process.returncode if self.process and self.process.process else None


class Harness:
    """Owns every backend and service a test session starts, and stops them all at the end."""

    def __init__(self, *, impl: str | None, target: str | None, work_dir: Path) -> None:
        self.impl = StagePackage.load(impl) if impl else None
        self.target = target.rstrip("/") if target else None
        self.work_dir = work_dir
        self.jwt_secret = secrets.token_urlsafe(48)
        self._stack = ExitStack()
        self._backends: dict[str, Backend] = {}
        self._database: Database | None = None
        self._cache: Cache | None = None
        self._shared: dict[int, RunningService] = {}
        self._unavailable: BackendUnavailable | None = None
        self.spawn: Spawn = forks.ForkServer().spawn if forks.enabled() else popen

    def close(self) -> None:
        stop_process_groups([p for service in self._shared.values() for p in service.processes])
        if self._database:
            self._database.engine.dispose()
        if self._cache:
            self._cache.client.close()
        self._stack.close()

    # -- backends ------------------------------------------------------------------------------
    def backends(self, kinds: tuple[str, ...]) -> dict[str, Backend]:
        missing = tuple(kind for kind in kinds if kind not in self._backends)
        if missing:
            if self._unavailable:  # one wait per session, not one per test
                raise self._unavailable
            try:
                self._backends.update(prepare_backends(missing, var_dir=self.work_dir / "var", stack=self._stack))
            except BackendUnavailable as exc:
                self._unavailable = exc
                raise
        return {kind: self._backends[kind] for kind in kinds}

    @property
    def database(self) -> Database:
        if self._database is None:
            backend = self.backends(("database",))["database"]
            proxy, query_log = None, None
            if not backend.embedded:
                url = make_url(backend.url)
                query_log = MysqlQueryLog()
                proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306, observe=query_log.connection)
                self._stack.callback(proxy.close)
            self._database = Database(backend, proxy, query_log)
        return self._database

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            backend = self.backends(("cache",))["cache"]
            url = urlsplit(backend.url)
            proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
            self._stack.callback(proxy.close)
            self._cache = Cache(backend, proxy)
        return self._cache

    # -- services ------------------------------------------------------------------------------
    def service_env(self, stage: Stage) -> dict[str, str]:
        # ENV_FILE empty: a developer's .env must not leak into the services under test. The suite
        # registers hundreds of users: each hash at the production cost would take a core for 0.1-0.2 s.
        env: dict[str, str] = {"JWT_SECRET": self.jwt_secret, "ENV_FILE": "", "PASSWORD_HASH_PROFILE": "cheapest"}
        # The broker is chosen per service (see service_broker); the others are shared.
        for kind, backend in self.backends(tuple(k for k in stage.backends if k != "broker")).items():
            env.update(backend.env)
        if "database" in stage.backends:
            env["DATABASE_URL"] = self.database.service_url
        if "cache" in stage.backends:
            env["REDIS_URL"] = self.cache.service_url
        return env

    def shared_service(self, stage: Stage) -> RunningService:
        """The one service of a stage that most tests share, started on first use, kept until the end."""
        if stage.number not in self._shared:
            self._shared[stage.number] = self.launch(stage)
        return self._shared[stage.number]

    def launch(self, stage: Stage, *, env: dict[str, str | None] | None = None, wait: bool = True,
               name: str | None = None) -> RunningService:
        """Start a service of `stage` (the IMPL package if one was given); the caller stops it.

        With `wait`, it is healthy and its consumer runs on return; without, it was only started.
        """
        if self.target:
            return RunningService(self.target, stage)
        package = self.impl or StagePackage.load(stage.path)
        port = free_port()
        broker, broker_env = None, {}
        if "broker" in stage.backends and wait:
            broker = self.service_broker(stage, package, port)
            broker_env = {ENV_VARS["broker"]: broker.bootstrap}
        elif "broker" in stage.backends:
            # Not waited for: a start that should stop at its settings check. A mock cluster would cost
            # more than that start; a service that starts anyway answers /healthz without a broker.
            broker_env = {ENV_VARS["broker"]: f"127.0.0.1:{free_port()}"}
        log_file = self.work_dir / "logs" / f"{name or package.name}-{port}.log"
        # Stage 5 on: every trace kept, in a span file of the service's own; the consumer's metrics on a free port.
        telemetry = {"TRACE_SAMPLE_RATE": "1.0", "TRACE_FILE": str(log_file.with_suffix(".spans.jsonl")),
                     "CONSUMER_METRICS_PORT": str(free_port())}
        full_env = {**self.service_env(stage), **telemetry, **broker_env, **(env or {})}
        log_file.parent.mkdir(parents=True, exist_ok=True)
        output = log_file.open("w", encoding="utf-8")
        self._stack.callback(output.close)
        process = ServiceProcess(package, env=full_env, port=port, output=output, spawn=self.spawn)
        service = RunningService(process.url, stage, package, process, log_file,
                                 {k: v for k, v in full_env.items() if v is not None}, broker,
                                 consumer_log=log_file.with_suffix(".consumer.log"), spawn=self.spawn)
        try:
            process.start(wait_seconds=30 if wait else 0)
            if wait and package.consumer_module:  # as `make stageN` does: the consumer runs beside gunicorn
                service.start_consumer()
        except ServiceFailed as exc:
            service.stop()
            raise ServiceFailed(f"{exc}; the end of its log ({log_file}):\n{_tail(log_file)}",
                                returncode=exc.returncode) from None
        except Exception:
            service.stop()
            raise
        return service

    def service_broker(self, stage: Stage, package: StagePackage, port: int) -> Broker:
        """A broker of the service's own: a fresh embedded mock cluster, or the real Kafka that is configured."""
        if real := os.environ.get(ENV_VARS["broker"], "").strip():
            return Broker(real)
        state = self.work_dir / "brokers" / f"{port}.json"
        holder = EmbeddedBroker(topics=package.topics_for(stage), state=state).start()
        self._stack.callback(holder.stop)
        return Broker(holder.url, BrokerControl(holder.control))

    def describe(self) -> dict[str, Any]:
        return {kind: (b.description if b.embedded else f"real {b.safe_url}") for kind, b in self._backends.items()}


def _tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log: why a service stopped is at its end."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
