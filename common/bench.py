"""`make bench STAGE=N`: wrk against the stage's API and, in the same run, against a bare Flask app.

Both are served by gunicorn with the stage's own gunicorn.conf.py, so the ratio shows what the
stage's code costs on top of the framework. The scenarios run in interleaved rounds, each starting at
another scenario and every other one in reverse, and each figure is the median over the rounds, so a
burst of noise on a shared machine, or the work a scenario leaves behind, skews one round, not the
result. A ratio is the median of the rounds' own ratios, and the scenarios compared run next to each
other: the machine's speed drifts by tens of per cent within a minute here, far less between two
neighbouring runs. Needs Debian's `wrk`. Prints a table and writes reports/bench-stage<N>.json. The
client shares the machine with the server: compare ratios, not absolute figures.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .backends import backend_env
from .bench_consumer import consumer_rates
from .runner import prepare_backends
from .service import ConsumerProcess, ServiceProcess, free_port
from .stages import REPO_ROOT, Stage, StagePackage, built, stage

# From stage 5 on, the instrumented stage runs twice: at the share of traces it keeps by default outside
# dev (default_sampling()), and keeping every trace.
FIRST_TRACED_STAGE, FULL_SAMPLING = 5, "1.0"
CREATE_BODY = '{"type": "bench.job", "payload": {"user": 42, "items": [1, 2, 3], "note": "benchmark"}}'
POST_SCRIPT = f"""wrk.method = "POST"
wrk.body = '{CREATE_BODY}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk(url: str, *, seconds: int, connections: int, threads: int, headers: dict[str, str] | None = None,
        script: Path | None = None) -> dict[str, float]:
    """Run wrk once and return requests/s, p50/p99 in ms, and the count of non-2xx answers."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.bench", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20_000, help="stage 4 on: messages for the consumer bench")
    parser.add_argument("--skip-consumer", action="store_true", help="stage 4 on: only the HTTP scenarios")
    args = parser.parse_args(argv)
    target = benchable(args.stage, tool="wrk")
    if target is None:
        return 2
    package = StagePackage.load(target.path)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        backends = prepare_backends(target.backends, var_dir=Path(scratch) / "var", stack=stack,
                                    topics=package.topics)
        env = backend_env(backends)
        traced = target.number >= FIRST_TRACED_STAGE
        sampling = default_sampling(package) if traced else None
        if traced:  # spans to a scratch file, never into var/
            env = {**env, "TRACE_SAMPLE_RATE": sampling, "TRACE_FILE": str(Path(scratch) / "spans.jsonl")}
        hello = ServiceProcess(package, env=env, port=free_port(), app_spec="common.bench_hello:app")
        api = ServiceProcess(package, env=env, port=free_port())
        # From stage 5 on: the same code keeping every trace, and the stage before, without the instruments.
        full = ServiceProcess(package, env={**env, "TRACE_SAMPLE_RATE": FULL_SAMPLING}, port=free_port()) \
            if traced else None
        previous = ServiceProcess(StagePackage.load(stage(target.number - 1).path), env=env, port=free_port()) \
            if traced else None
        # From the cache on, reads are also compared with stage 1's uncached GET on the same database.
        uncached = ServiceProcess(StagePackage.load(stage(1).path), env=env, port=free_port()) \
            if target.number >= 3 else None
        for process in (hello, api, uncached, full, previous):
            if process:
                stack.callback(process.stop)
                process.start()
        if package.consumer_module:  # the system as `make stageN` runs it: the consumer drains beside the API
            stack.callback(ConsumerProcess(package, env={**env, "CONSUMER_METRICS_PORT": str(free_port())})
                           .start().stop)
        # Each scenario beside what it is compared with: the reads together, then the creates.
        read, create = _read_and_create(api.url, Path(scratch))
        reads, creates = {"GET /api/v1/tasks/{id}": read}, {"POST /api/v1/tasks": create}
        if uncached:
            reads["stage 1 GET (no cache)"], stage1_create = _read_and_create(uncached.url, Path(scratch))
            if target.number >= 4:  # the asynchronous create against stage 1's synchronous insert
                creates["stage 1 POST (sync insert)"] = stage1_create
        for label, service in ((f"stage {target.number - 1}", previous),
                               (f"stage {target.number} at 100% traces", full)):
            if service:
                reads[f"{label} GET"], creates[f"{label} POST"] = _read_and_create(service.url, Path(scratch))
        runs = {"hello-world": dict(url=f"{hello.url}/hello"), **reads, **creates}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
        for options in runs.values():
            wrk(seconds=2, connections=args.connections, threads=args.threads, **options)  # warm-up
        scenarios = list(runs.items())
        for number in range(args.rounds):
            # Each round starts one scenario further on: what runs just before a scenario (a POST round
            # leaves the consumer landing its messages) changes from round to round, not always the same.
            start = number * len(scenarios) // args.rounds
            order = scenarios[start:] + scenarios[:start]
            for name, options in reversed(order) if number % 2 else order:  # A-B, then B-A: drift cancels
                rounds[name].append(wrk(seconds=args.seconds, connections=args.connections, threads=args.threads,
                                        **options))
        results = {name: {key: statistics.median(r[key] for r in runs_) for key in runs_[0]}
                   for name, runs_ in rounds.items()}
    def round_ratios(name: str, base: str) -> list[float]:
        """Each round's ratio of `name` to `base`: the two ran moments apart."""
        return [a["rps"] / b["rps"] for a, b in zip(rounds[name], rounds[base], strict=True)]

    def ratio(name: str, base: str) -> float:
        return statistics.median(round_ratios(name, base))

    for name, figures in results.items():
        figures["ratio"] = round(ratio(name, "hello-world"), 3)
    report = {
        "stage": target.folder,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "database": backends["database"].description if backends["database"].embedded else "real "
        + backends["database"].safe_url,
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.seconds}s, median of {args.rounds} interleaved "
               "rounds after a 2 s warm-up",
        # From stage 2 on every successful request may write a log line; the sample rate changes the cost.
        "log_sample_rate": os.environ.get("LOG_SAMPLE_RATE", "default"),
        "results": results,
        "rounds": rounds,
    }
    print(f"stage {target.number} bench - {report['when']} - {report['machine']}\n"
          f"database: {report['database']}\nwrk {report['wrk']}, gunicorn: {package.gunicorn_config.name}, "
          f"LOG_SAMPLE_RATE: {report['log_sample_rate']}")
    print(f"{'scenario':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'x hello':>9}")
    for name, f in results.items():
        print(f"{name:<26}{f['rps']:>10.1f}{f['p50_ms']:>9.2f}{f['p99_ms']:>9.2f}{f['non_2xx']:>9}{f['ratio']:>9.3f}")
    if uncached:
        hot, cold = "GET /api/v1/tasks/{id}", "stage 1 GET (no cache)"
        print(f"hot-key GET: {ratio(hot, 'hello-world'):.2f}x hello-world (target 0.6x), {ratio(hot, cold):.2f}x "
              "stage 1's uncached GET (target 3x)")
    if "stage 1 POST (sync insert)" in results:
        post, sync = "POST /api/v1/tasks", "stage 1 POST (sync insert)"
        print(f"POST (202 after the broker's ack): {ratio(post, 'hello-world'):.2f}x hello-world (target 0.5x), "
              f"{ratio(post, sync):.2f}x stage 1's synchronous POST (target 2x)")
    if previous:
        before = target.number - 1
        report["against_previous"] = {}
        for kind, name in (("GET", "GET /api/v1/tasks/{id}"), ("POST", "POST /api/v1/tasks")):
            old, full_name = f"stage {before} {kind}", f"stage {target.number} at 100% traces {kind}"
            report["against_previous"][kind] = figures = {
                "default": round(ratio(name, old), 3), "full": round(ratio(full_name, old), 3),
                "rounds": [round(value, 3) for value in round_ratios(name, old)]}
            print(f"{kind} at {sampling} traces kept: {figures['default']:.3f}x stage {before} (target at least "
                  f"0.9x; the rounds: {', '.join(map(str, figures['rounds']))}); keeping every trace: "
                  f"{figures['full']:.3f}x")
        report["trace_sample_rate"] = {"default": sampling, "full": FULL_SAMPLING}
    if package.consumer_module and not args.skip_consumer:
        report["consumer"] = consumer_rates(package, target, messages=args.messages)
    out = REPO_ROOT / "reports" / f"bench-stage{target.number}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out.relative_to(REPO_ROOT)}")
    return 0


def benchable(number: int, *, tool: str) -> Stage | None:
    """Stage `number` if it is built here and Debian's `tool` is installed; else None, having said why."""
    try:
        target = built(number)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if not shutil.which(tool):
        print(f"error: {tool} is not installed (Debian: apt-get install {tool})", file=sys.stderr)
        return None
    return target


def default_sampling(package: StagePackage) -> str:
    """The share of new traces a traced stage keeps outside dev: its shared/settings.py DEFAULT_TRACE_SAMPLE_RATE."""
    return str(importlib.import_module(f"{package.name}.shared.settings").DEFAULT_TRACE_SAMPLE_RATE)


def _read_and_create(url: str, scratch: Path) -> tuple[dict, dict]:
    """wrk's options for a hot-key GET and for a POST of new tasks, as a fresh user of the service at `url`."""
    token, task_id = _seed(url)
    script = scratch / f"post-{urlsplit(url).port}.lua"
    script.write_text(POST_SCRIPT % token)
    return (dict(url=f"{url}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}),
            dict(url=f"{url}/api/v1/tasks", script=script))


def _seed(url: str) -> tuple[str, str]:
    """Make a user, a token and one task to read."""
    credentials = {"username": f"bench{uuid.uuid4().hex[:12]}", "password": "benchmark-password"}
    requests.post(f"{url}/api/v1/users", json=credentials, timeout=10).raise_for_status()
    login = requests.post(f"{url}/api/v1/auth/login", json=credentials, timeout=10)
    login.raise_for_status()
    token = login.json()["access_token"]
    task = requests.post(f"{url}/api/v1/tasks", json={"type": "bench.seed", "payload": {"n": 1}},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    task.raise_for_status()
    return token, task.json()["id"]


if __name__ == "__main__":
    sys.exit(main())
