"""The producer's metrics in three layers [指标分层]: RED per route, resources, business; and the files behind them.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is imported (gunicorn.conf.py):
each worker then writes its values to files there, and a scrape of any worker sums them all. Without it
(an app made in a test), the values live in this app's registry. Every label value comes from a closed
set (route templates, known methods, problem codes), so no client can mint a series. The web side
(the RED middleware and GET /metrics) is in instrumentation.py.
"""
from __future__ import annotations

import fcntl
import os
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy import Engine

from ..shared.database import OPERATIONS, max_connections

# Seconds, around the p99 targets of slo.yaml (get 50 ms, create 100 ms, login 500 ms): a bucket edge at
# each target, so "how many answered within it" is exact, and a few edges past it to size a breach.
REQUEST_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A query or a publish is a part of a request: finer at the low end.
PART_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SAMPLE_SECONDS = 1.0  # how often each worker records its CPU and memory: finer than any rate() window
# Label values known in advance are exported as 0 from the start: a rate() over a series that appears
# only with its first event is no rate at all, and an alert over it cannot fire on that first event.
CREATE_REFUSALS = ("VALIDATION_FAILED", "MALFORMED_JSON", "UNAUTHORIZED", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE",
                   "IDEMPOTENCY_KEY_IN_USE", "IDEMPOTENCY_KEY_MISMATCH", "SERVICE_UNAVAILABLE")
PUBLISH_FAILURES = ("msg_timed_out", "queue_full", "no_report", "refused")
REDIS_FAILURES = ("timeout", "connection", "other")
CACHE_LEVELS, CACHE_RESULTS = ("local", "redis"), ("hit", "negative_hit", "miss")
PUBLISH_OUTCOMES = ("acked", "failed")


class ProducerMetrics:
    """Every series the producer exports; one per app, made by its runtime."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), *, mode: str) -> Gauge:
            return Gauge(name, doc, labels, registry=registry, multiprocess_mode=mode)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        self.registry = registry
        # RED: rate and errors are the histogram's _count by status; duration is its buckets.
        self.requests = histogram("http_server_request_duration_seconds", "HTTP requests by route template, "
                                  "method and status, and how long they took", ("route", "method", "status"),
                                  REQUEST_BUCKETS)
        # Resources.
        self.cpu = counter("process_cpu_seconds_total", "CPU time the producer's workers used (user + system)")
        self.memory = gauge("process_resident_memory_bytes", "Resident memory of each live worker", ("pid",),
                            mode="liveall")
        self.queries = histogram("db_query_duration_seconds", "Database statements by kind", ("operation",),
                                 PART_BUCKETS)
        self.pool_in_use = gauge("db_pool_checked_out_connections", "Connections lent to requests now",
                                 mode="livesum")
        self.pool_overflow = gauge("db_pool_overflow_connections", "Connections open past the pool's size",
                                   mode="livesum")
        self.pool_limit = gauge("db_pool_max_connections", "Pool size + overflow: what may be lent at once",
                                mode="livesum")
        self.pool_timeouts = counter("db_pool_timeouts_total", "Checkouts that waited the pool's timeout in vain")
        self.redis_errors = counter("redis_errors_total", "Redis calls that failed, by kind", ("kind",))
        self.producer_queue = gauge("kafka_producer_queue_messages", "Messages in the Kafka producer's local "
                                    "queue, not yet acknowledged", mode="livesum")
        self.readiness = gauge("readiness_status", "1 if the dependency answered the last /readyz, else 0",
                               ("dependency",), mode="livemin")
        # Business.
        self.accepted = counter("tasks_accepted_total", "Creates the broker acknowledged (202), replays excluded")
        self.rejected = counter("tasks_rejected_total", "Creates refused, by problem code", ("reason",))
        self.replays = counter("idempotency_replays_total", "Creates answered with an earlier answer "
                               "(same Idempotency-Key and body)")
        self.cache_lookups = counter("cache_lookups_total", "Task reads per cache level and what the level "
                                     "held: hit, negative_hit (a cached 'no such task') or miss",
                                     ("level", "result"))
        self.singleflight_waits = counter("cache_singleflight_waits_total", "Reads that waited for another "
                                          "thread's load of the same key")
        self.publish = histogram("broker_publish_duration_seconds", "From produce() to the broker's "
                                 "acknowledgement (or the last failed attempt)", ("outcome",), PART_BUCKETS)
        self.publish_errors = counter("broker_publish_errors_total", "Publish attempts without an "
                                      "acknowledgement, by reason", ("reason",))
        for values, family in ((CREATE_REFUSALS, self.rejected), (PUBLISH_FAILURES, self.publish_errors),
                               (REDIS_FAILURES, self.redis_errors)):
            for value in values:
                family.labels(value)
        # The series every request observes, bound once: labels() takes a lock and checks its values.
        self.query_duration = {operation: self.queries.labels(operation) for operation in OPERATIONS}
        self.publish_duration = {outcome: self.publish.labels(outcome) for outcome in PUBLISH_OUTCOMES}
        self.cache_lookup = {(level, result): self.cache_lookups.labels(level, result)
                             for level in CACHE_LEVELS for result in CACHE_RESULTS}


class ResourceSampler:
    """A thread that records this worker's CPU time, resident memory and pools every SAMPLE_SECONDS
    (the pools' limit once).

    The pools are read rather than followed: that is two event handlers less on every checkout and
    return of every request (design/benchmark.md), and a second is finer than any window an alert reads.
    """

    def __init__(self, metrics: ProducerMetrics, *, engines: tuple[Engine, ...]) -> None:
        self.metrics, self.pools, self._cpu_seen = metrics, [engine.pool for engine in engines], 0.0
        metrics.pool_limit.set(sum(max_connections(engine.url) for engine in engines))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stopping.wait(SAMPLE_SECONDS):
                return

    def sample(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        self.metrics.cpu.inc(cpu - self._cpu_seen)  # a counter, so a restarted worker adds, never rewinds
        self._cpu_seen = cpu
        self.metrics.memory.labels(str(os.getpid())).set(_resident_bytes())
        # QueuePool's counts (MariaDB's and SQLite's default); a pool without them counts as empty.
        self.metrics.pool_in_use.set(sum(getattr(pool, "checkedout", int)() for pool in self.pools))
        self.metrics.pool_overflow.set(sum(max(0, getattr(pool, "overflow", int)()) for pool in self.pools))


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no /proc (macOS): the peak is the nearest figure the OS gives, in KiB there
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- gunicorn's workers: a dead worker's files are folded into one archive per kind, so the directory
#    holds the live workers' files and two archives, however many workers have come and gone.
ARCHIVED_KINDS = ("counter", "histogram")  # summed across processes; live gauges are simply dropped


def retire_worker(pid: int) -> None:
    """gunicorn's child_exit, in the master: drop the dead worker's live gauges, archive its counters and histograms.

    The worker's counts stay in the sums (a counter never goes back, so rate() sees no reset); only the
    files go.
    """
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    with files_locked(directory, fcntl.LOCK_EX):
        multiprocess.mark_process_dead(pid, str(directory))
        for kind in ARCHIVED_KINDS:
            dead = directory / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            archive = MmapedDict(str(directory / f"{kind}_archive.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):
                    archive.write_value(key, archive.read_value(key)[0] + value, timestamp)
            finally:
                archive.close()
            dead.unlink()


@contextmanager
def files_locked(directory: Path, how: int) -> Iterator[None]:
    with open(directory / "archive.lock", "a+b") as lock:  # not *.db: the collector reads only those
        fcntl.flock(lock, how)
        yield
