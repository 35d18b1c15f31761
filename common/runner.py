"""Bring one stage's checkpoint up in the foreground: `python -m common.runner 4 [--impl PATH]`.

Starts the embedded backends the stage needs (or waits for the real ones named by environment
variables), applies the schema, serves the stage under gunicorn, prints a banner, and on Ctrl-C
or SIGTERM stops everything it started.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from .backends import (Backend, BackendUnavailable, backend_env, interpreter, relative_path, resolve,
                       wait_until_reachable)
from .connections import database_engine
from .panels import RUNNER_SCRAPE
from .prometheus import CONFIG as PROMETHEUS_CONFIG
from .prometheus import Prometheus, PrometheusMissing, address
from .schema import apply_schema
from .service import ConsumerProcess, PortInUse, ServiceFailed, ServiceProcess, check_port_free
from .stages import REPO_ROOT, NotAStagePackage, StagePackage, built, stage

EXIT_USAGE, EXIT_BACKEND = 2, 3


def banner(title: str, url: str, backends: dict[str, Backend], var_dir: Path, consumer: str | None = None,
           telemetry: list[str] | None = None) -> str:
    lines = [f"  {title}", f"  API      {url}   (docs: {url}/docs)"]
    for kind, backend in backends.items():
        where = backend.description if backend.embedded else f"real, {backend.safe_url}"
        lines.append(f"  {kind:<8} {where}")
        if backend.embedded and backend.hint:
            lines.append(f"  {'':<8} {backend.hint}")
        if kind == "broker":  # the stage's Kafka clients log through its shared/kafka_log.QuietLog
            lines.append(f"  {'':<8} the Kafka clients' own log: one line per kind of trouble a minute; "
                         "LOG_LEVEL=DEBUG writes every line")
    if consumer:
        lines.append(f"  consumer {consumer}")
    lines += [f"  {line}" for line in telemetry or []]
    if any(b.embedded for b in backends.values()):
        lines.append(f"  Embedded servers live as long as this process; files stay in {relative_path(var_dir)}/.")
    lines.append("  Ctrl-C stops everything started here.")
    rule = "=" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def prepare_backends(kinds: tuple[str, ...], *, var_dir: Path, stack: ExitStack, wait_seconds: float = 15.0,
                     topics: Path | None = None, environ: dict[str, str] | None = None) -> dict[str, Backend]:
    """Resolve the backends (from `environ`, default os.environ), wait for each to answer, apply the schema."""
    backends = resolve(kinds, var_dir=var_dir, stack=stack, topics=topics, environ=environ)
    for backend in backends.values():
        wait_until_reachable(backend, seconds=wait_seconds if not backend.embedded else 5.0)
    if "database" in backends:
        engine = database_engine(backends["database"].url)
        try:
            apply_schema(engine)
        finally:
            engine.dispose()
    return backends


def serve(package: StagePackage, *, env: dict[str, str | None], stack: ExitStack, port: int,
          host: str = "127.0.0.1", output: IO[str] | None = None) -> ServiceProcess:
    """Start the stage as `make stageN` runs it: gunicorn, and from stage 4 on its consumer; `stack` stops both."""
    service = ServiceProcess(package, env=env, host=host, port=port, output=output)
    stack.callback(service.stop)
    service.start(wait_seconds=30)
    if package.consumer_module:  # stage 4 on: the consumer that lands accepted tasks runs beside gunicorn
        stack.callback(ConsumerProcess(package, env=env, output=output).start().stop)
    return service


def observe(package: StagePackage, *, url: str, var_dir: Path, stack: ExitStack) -> list[str]:
    """From stage 5 on: start a real Prometheus on the stage's rules, scraping the producer and the consumer.

    Returns the banner's lines: where the metrics, the Prometheus and the traces are, or how to get Prometheus.
    """
    if not (package.path / PROMETHEUS_CONFIG).is_file():
        return []
    consumer = f"{os.environ.get('CONSUMER_METRICS_HOST', '127.0.0.1')}:{os.environ.get('CONSUMER_METRICS_PORT', '9102')}"
    lines = [f"metrics  {url}/metrics and http://{consumer}/metrics",
             f"traces   {os.environ.get('TRACE_FILE', 'var/traces/spans.jsonl')}   (make trace STAGE=<n> ID=<trace or request id>)"]
    try:
        server = Prometheus(package.path, {"producer": address(url), "consumer": consumer},
                            var_dir / "prometheus", interval=f"{RUNNER_SCRAPE:.0f}s").start()
    except PrometheusMissing as exc:
        return [*lines, f"         no Prometheus here: {exc}"]
    stack.callback(server.stop)
    url_file = var_dir / "prometheus" / "url"  # where `make panels` finds it
    url_file.write_text(server.url, encoding="utf-8")
    stack.callback(url_file.unlink, missing_ok=True)
    return [*lines, f"prometheus {server.url}   (the stage's rules loaded; alerts at {server.url}/alerts)"]


def run(number: int, *, impl: str | None, host: str, port: int, var_dir: Path, wait_seconds: float) -> int:
    # A learner's package (IMPL) may be a stage this repository does not have yet; the reference must exist.
    target = stage(number) if impl else built(number)
    package = StagePackage.load(impl or target.path)
    check_port_free(host, port)

    def stop_on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt  # unwinds through the ExitStack like Ctrl-C does

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    # A shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with ExitStack() as stack:
        backends = prepare_backends(target.backends, var_dir=var_dir, stack=stack, wait_seconds=wait_seconds,
                                    topics=package.topics_for(target))
        try:
            service = serve(package, env=backend_env(backends), stack=stack, host=host, port=port)
            title = f"Stage {target.number} - {target.title} [{target.title_zh}]  ({package.path.name})"
            consumer = (f"{interpreter()} -m {package.consumer_module} (one process)"
                        if package.consumer_module else None)
            telemetry = observe(package, url=service.url, var_dir=var_dir, stack=stack)
            print(banner(title, service.url, backends, var_dir, consumer, telemetry), flush=True)
            return service.wait()
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.runner", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int, help="stage number, 0-8")
    parser.add_argument("--impl", help="serve this stage package instead of the reference")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--var-dir", type=Path, default=REPO_ROOT / "var", help="where embedded data lives")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for a real backend")
    args = parser.parse_args(argv)
    try:
        return run(args.stage, impl=args.impl, host=args.host, port=args.port, var_dir=args.var_dir,
                   wait_seconds=args.wait)
    except (LookupError, NotAStagePackage, PortInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except ServiceFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
