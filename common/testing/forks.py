"""Start the services under test as children of a fork server that has imported their libraries once.

A service start is mostly imports: a stage 4 gunicorn master spends most of its 0.4 s of CPU
importing gunicorn, Flask, SQLAlchemy, pydantic, redis and confluent-kafka, and the suite starts
about 140 gunicorn masters and consumers. Each test worker keeps one fork server (the standard
library's `multiprocessing` "forkserver") that has imported those libraries; a service is a fork of
it that runs the same entry point as `python -m gunicorn ...` or `python -m <stage>.consumer`, with
the service's arguments, environment, working directory and import path, in a session of its own,
its output in the service's log. Nothing of the stage is imported before the fork, so each service
imports its own code as a fresh interpreter would.

`make stageN`, `make bench` and the runner's own checks still start real interpreters;
HARNESS_FORKS=0 makes the harness do so too (to rule the fork server out when a start misbehaves).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import IO

from tenacity import Retrying, stop_after_delay, wait_fixed

# Libraries every stage's processes import, none of which reads the environment when imported.
PRELOAD = ["gunicorn.app.wsgiapp", "gunicorn.workers.gthread", "flask", "werkzeug", "sqlalchemy", "pymysql",
           "pydantic", "pydantic_settings", "loguru", "redis", "confluent_kafka", "argon2", "jwt", "tenacity"]


def enabled() -> bool:
    return os.environ.get("HARNESS_FORKS", "1") != "0"


class ForkedProcess:
    """The part of `subprocess.Popen` the harness uses, for a child of the fork server."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        self.pid: int = process.pid  # type: ignore[assignment] - set once started

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        return self._process.exitcode

    def send_signal(self, signal: int) -> None:
        if self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):  # gone, and the server has not said so yet
                os.kill(self.pid, signal)


class ForkServer:
    """Starts `python -m <module> <args>` commands as forks of a server that has imported PRELOAD."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)

    def spawn(self, command: list[str], *, env: dict[str, str], cwd: Path, output: IO[str] | None) -> ForkedProcess:
        """Start `command` ([python, "-m", module, *args]) as a fork; same contract as `service.popen`."""
        _, flag, module, *args = command
        assert flag == "-m", f"only `python -m module` commands can be forked: {command}"
        log = output.name if output is not None else None
        # Daemonic: a service some check failed to stop gets SIGTERM when the test worker exits, instead
        # of multiprocessing waiting for it there.
        process = self._context.Process(target=_run_module, args=(module, args, env, str(cwd), log),
                                        name=module, daemon=True)
        process.start()
        # Popen(start_new_session=True) returns once the child leads its own group; so must this, or a
        # caller that stops the group at once (a drill's SIGKILL) would find no such group yet.
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.001), reraise=True):
            with attempt:
                assert process.exitcode is not None or _group_of(process.pid) == process.pid, \
                    f"{module} (pid {process.pid}) has not started a session of its own"
        return ForkedProcess(process)


def _group_of(pid: int | None) -> int | None:
    try:
        return os.getpgid(pid) if pid else None
    except ProcessLookupError:
        return None


def _run_module(module: str, args: list[str], env: dict[str, str], cwd: str, log: str | None) -> None:
    """In the fork: become `python -m module args` as started from `cwd` with `env`, then run it."""
    os.setsid()  # a process group of its own, as start_new_session gives a Popen child
    if log is not None:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.close(descriptor)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # What a fresh interpreter's import path would be: its working directory (-m), PYTHONPATH, then the
    # standard library and site-packages (the fork server's own path holds the test worker's entries).
    installed = [entry for entry in sys.path if entry.startswith((sys.prefix, sys.base_prefix))]
    sys.path[:] = [cwd, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep)), *installed]
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
