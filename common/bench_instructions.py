"""`make bench-instructions STAGE=N`: what one request costs stage N and stage N-1, in CPU instructions.

wrk's figures (`make bench`) move by tens of per cent from one round to the next on a shared machine,
more than an instrument costs. valgrind's callgrind counts instructions instead, which come out the
same whatever else the machine runs. Each stage's app is made in one process on the same backends
(embedded by default) and called straight through its WSGI callable: without gunicorn, but with its
metrics kept in files as under gunicorn (PROMETHEUS_MULTIPROC_DIR). After the warm-up requests,
`callgrind_control` zeroes the counts of every thread; after the measured requests, it writes them;
the counts over the number of requests are the cost of one request, the main thread's (the request
itself) apart from the other threads' (span export, delivery reports, samplers). Those threads wake
on timers, and under valgrind a request takes far longer than natively: their share per request is
overstated, alike in both stages.

A traced stage (5 on) is counted keeping no trace and keeping every one, and its cost at its default
rate r (shared/settings.py DEFAULT_TRACE_SAMPLE_RATE) is worked out from those two: (1 - r) x the first
+ r x the second. Counted at r itself, the measured requests would keep a random number of traces, not
r of them, and each kept create more or fewer moves a create's figure, over 200 requests, by some 4,000.
Needs valgrind. Prints a table and writes reports/instructions-stage<N>.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .backends import backend_env
from .bench import CREATE_BODY, FIRST_TRACED_STAGE, FULL_SAMPLING, benchable, default_sampling
from .runner import prepare_backends
from .service import package_pythonpath
from .stages import REPO_ROOT, StagePackage, stage

FIRST_API_STAGE = 1  # stage 0 answers only its health check
SCENARIOS = ("GET", "POST")  # a hot-key read of one task; a create of a new one
NO_SAMPLING = "0.0"
BODY = CREATE_BODY.encode()


@dataclass(frozen=True)
class Run:
    label: str
    package: StagePackage
    scenario: str
    sample_rate: str | None = None  # TRACE_SAMPLE_RATE, for a traced stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.bench_instructions", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=100, help="requests before the counts start")
    args = parser.parse_args(argv)
    target = benchable(args.stage, tool="valgrind")
    if target is None:
        return 2
    before = stage(target.number - 1) if target.number > 0 else None
    if before is None or before.number < FIRST_API_STAGE:
        print(f"error: stage {target.number} has no stage with a task API before it to compare with; "
              f"STAGE={FIRST_API_STAGE + 1} is the first this compares", file=sys.stderr)
        return 2
    package, previous = StagePackage.load(target.path), StagePackage.load(before.path)
    stages = ((before.number, previous), (target.number, package))
    runs = [Run(label, pkg, scenario, rate) for number, pkg in stages for label, rate in versions(number)
            for scenario in SCENARIOS]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        backends = prepare_backends(target.backends, var_dir=Path(scratch) / "var", stack=stack,
                                    topics=package.topics_for(target))
        # Each run sets the rate it counts at; one left in the shell must not reach a run that sets none.
        inherited = {name: value for name, value in os.environ.items() if name != "TRACE_SAMPLE_RATE"}
        env = {**inherited, **backend_env(backends), "TRACE_FILE": str(Path(scratch) / "spans.jsonl")}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            counts = list(pool.map(lambda run: _count(run, env=env, scratch=Path(scratch), requests=args.requests,
                                                      warmup=args.warmup), runs))
    results = {f"{run.label} {run.scenario}": figures for run, figures in zip(runs, counts)}
    baseline, default = (at_default(results, number, pkg) for number, pkg in stages)
    compared = list(dict.fromkeys([*(label for label, _ in versions(target.number)), default]))
    print(f"instructions per request (callgrind), {args.requests} requests after {args.warmup} warm-up ones; "
          f"{'embedded' if all(b.embedded for b in backends.values()) else 'configured'} backends; "
          f"LOG_SAMPLE_RATE: {os.environ.get('LOG_SAMPLE_RATE', 'default')}")
    print(f"{'run':<58}{'main thread':>14}{'other threads':>15}{'all':>12}")
    for name, figures in results.items():
        print(f"{name:<58}{figures['main']:>14,}{figures['others']:>15,}{figures['all']:>12,}")
    ratios: dict[str, dict[str, float]] = {}
    for label in compared:
        for scenario in SCENARIOS:
            old, new = results[f"{baseline} {scenario}"], results[f"{label} {scenario}"]
            ratios[f"{label} {scenario}"] = ratio = {part: round(old[part] / new[part], 3) for part in ("main", "all")}
            print(f"{label} {scenario}: {baseline}'s count / this one's = {ratio['main']:.3f} on the request's "
                  f"thread, {ratio['all']:.3f} with the other threads")
    report = {"stage": target.folder, "against": before.folder,
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "requests": args.requests, "warmup": args.warmup, "results": results, "ratios": ratios}
    out = REPO_ROOT / "reports" / f"instructions-stage{target.number}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out.relative_to(REPO_ROOT)}")
    return 0


def versions(number: int) -> list[tuple[str, str | None]]:
    """The runs of one stage, as (label, TRACE_SAMPLE_RATE): as it is, or, if traced, keeping no trace and every one."""
    if number < FIRST_TRACED_STAGE:
        return [(f"stage {number}", None)]
    return [(f"stage {number}, no trace kept", NO_SAMPLING), (f"stage {number}, every trace kept", FULL_SAMPLING)]


def at_default(results: dict[str, dict[str, int]], number: int, package: StagePackage) -> str:
    """The label of the stage's figures as it runs by default; for a traced stage, worked out into `results`."""
    if number < FIRST_TRACED_STAGE:
        return f"stage {number}"
    sampling = default_sampling(package)
    label = f"stage {number}, {sampling} of traces kept (expected)"
    (none, _), (every, _) = versions(number)
    for scenario in SCENARIOS:
        results[f"{label} {scenario}"] = expected_at(float(sampling), none=results[f"{none} {scenario}"],
                                                     every=results[f"{every} {scenario}"])
    return label


def expected_at(rate: float, *, none: dict[str, int], every: dict[str, int]) -> dict[str, int]:
    """A request's average cost when `rate` of traces are kept: (1 - rate) x one not kept + rate x one kept."""
    return {part: round((1 - rate) * none[part] + rate * every[part]) for part in none}


def _count(run: Run, *, env: dict[str, str], scratch: Path, requests: int, warmup: int) -> dict[str, int]:
    """Run one scenario of one stage under callgrind; its instructions per request, main thread and others."""
    package, scenario = run.package, run.scenario
    prefix = scratch / f"{package.name}-{scenario}-{run.sample_rate if run.sample_rate is not None else 'untraced'}"
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={prefix}.out",
               "--dump-instr=no", sys.executable, "-m", "common.bench_instructions", "--child", str(package.path),
               scenario, str(warmup), str(requests)]
    with open(f"{prefix}.log", "w") as log:
        # Metrics as gunicorn's workers keep them (stage 5 on): in files shared across workers, not in memory.
        metric_files = scratch / f"{prefix.name}-metrics"
        metric_files.mkdir()
        child_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metric_files), "PYTHONPATH": package_pythonpath(package),
                     **({"TRACE_SAMPLE_RATE": run.sample_rate} if run.sample_rate is not None else {})}
        child_process = subprocess.Popen(command, env=child_env,
                                         cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         text=True)
        assert child_process.stdin and child_process.stdout
        # The child says where it stands and waits: the counts are zeroed, then written, while it waits.
        for line, control in (("warm", "-z"), ("measured", "-d")):
            if child_process.stdout.readline().strip() != line:
                break
            subprocess.run(["callgrind_control", control, str(child_process.pid)], check=True, capture_output=True)
            child_process.stdin.write("go\n")
            child_process.stdin.flush()
        if child_process.wait():
            raise SystemExit(f"{package.name} {scenario} failed under valgrind; see {prefix}.log:\n"
                             + Path(f"{prefix}.log").read_text()[-3000:])
    # callgrind_control's dump is the first one: <out>.1-<thread>, thread 01 being the main thread.
    per_thread = {int(path.name.rsplit("-", 1)[1]): _total(path) for path in scratch.glob(f"{prefix.name}.out.1-*")}
    if 1 not in per_thread:
        raise SystemExit(f"{package.name} {scenario}: callgrind wrote no counts for the main thread; see {prefix}.log")
    main_thread = per_thread.pop(1)
    others = sum(per_thread.values())
    return {"main": main_thread // requests, "others": others // requests, "all": (main_thread + others) // requests}


def _total(dump: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
    if match is None:
        raise SystemExit(f"{dump}: a callgrind dump without its totals line")
    return int(match.group(1))


# -- the child, under valgrind: one app, its requests sent straight to its WSGI callable.

def child(path: Path, scenario: str, warmup: int, requests: int) -> None:
    import importlib

    from werkzeug.test import EnvironBuilder

    parent = os.fdopen(os.dup(1), "w")  # the parent's line; whatever the app prints goes to the log
    os.dup2(2, 1)

    def wait_for_parent(where: str) -> None:
        print(where, file=parent, flush=True)
        sys.stdin.readline()

    app = importlib.import_module(f"{path.name}.producer").create_app()
    client = app.test_client()
    credentials = {"username": f"bench{os.getpid()}", "password": "benchmark-password"}
    client.post("/api/v1/users", json=credentials)
    token = client.post("/api/v1/auth/login", json=credentials).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    task = client.post("/api/v1/tasks", data=BODY, headers=headers).get_json()["id"]

    def environs(count: int) -> Iterator[dict]:
        options = dict(method="GET", path=f"/api/v1/tasks/{task}") if scenario == "GET" else \
            dict(method="POST", path="/api/v1/tasks", data=BODY)
        for _ in range(count):
            yield EnvironBuilder(headers=headers, **options).get_environ()

    def call(environ: dict) -> None:
        statuses: list[str] = []
        answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        try:
            for _ in answer:
                pass
        finally:
            getattr(answer, "close", lambda: None)()
        if not statuses[0].startswith("2"):  # a refused request would be counted as if it were the scenario
            raise SystemExit(f"{scenario} {environ['PATH_INFO']} answered {statuses[0]}")

    for environ in environs(warmup):
        call(environ)
    measured = list(environs(requests))  # built before the counts start: a client's work, not the app's
    # Every run's count starts from a collector with nothing pending: whether the warm-up's leftovers set off
    # a full collection inside the measured requests would otherwise differ from one run to the next.
    gc.collect()
    wait_for_parent("warm")
    for environ in measured:
        call(environ)
    wait_for_parent("measured")
    os._exit(0)  # the counts are written; the app's threads and backends need no orderly end here


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
