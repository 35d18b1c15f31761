"""Start a stage's producer under gunicorn and wait until it answers /healthz."""
from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import requests

from .stages import REPO_ROOT, StagePackage


class PortInUse(Exception):
    """The port the service should listen on is taken."""


class ServiceFailed(Exception):
    """The service exited or never became healthy."""

    def __init__(self, message: str, *, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUse if something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"port {port} on {host} is already in use ({exc.strerror}); "
                            f"stop what holds it or choose another with PORT=<n>") from exc


def package_pythonpath(package: StagePackage) -> str:
    """The import path for a stage package: its own parent first, so it wins over a namesake, then common/."""
    return os.pathsep.join([str(package.path.parent), str(REPO_ROOT)])


_PORTS = random.SystemRandom()  # not the global generator, which a test or a fuzzer may seed


def free_port() -> int:
    """A port nobody is bound to, below the kernel's ephemeral range.

    Outgoing connections take their local ports from that range (and so does a bind to port 0), so a
    port handed out from it can be taken by some client's connection before the caller binds it, and
    a service then fails to start with "address in use". Below the range, only another caller of this
    function could take it, and it must find the port unbound as well.
    """
    low = _ephemeral_ports_start()
    for _ in range(200):
        port = _PORTS.randrange(max(1024, low - 16384), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port below {low} after 200 tries")


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: IANA's dynamic range starts here
        return 49152


def popen(command: list[str], *, env: dict[str, str], cwd: Path, output: IO[str] | None) -> subprocess.Popen[str]:
    """Start `command` in a session of its own (so its whole process group can be stopped), output to `output`."""
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT if output else None,
                            text=True, start_new_session=True)


class Process(Protocol):
    """What is used of a started process: a `subprocess.Popen`, or a child of the harness's fork server."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


# How a process is started: `popen`, or the test harness's fork server (common/testing/forks.py).
Spawn = Callable[..., Process]


class ServiceProcess:
    """One gunicorn master (in its own process group) serving one stage package."""

    def __init__(self, package: StagePackage, *, env: dict[str, str | None], host: str = "127.0.0.1",
                 port: int, output: IO[str] | None = None, app_spec: str | None = None,
                 spawn: Spawn = popen) -> None:
        self.package, self.host, self.port, self.spawn = package, host, port, spawn
        self.app_spec = app_spec or package.app_spec
        merged = {**os.environ, **env, "HOST": host, "PORT": str(port),
                  "PYTHONPATH": package_pythonpath(package)}
        self.env = {key: value for key, value in merged.items() if value is not None}  # None unsets
        self.output = output
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, wait_seconds: float = 30.0) -> "ServiceProcess":
        # gunicorn puts its working directory first on sys.path: it must be the package's parent, or a
        # learner's workspace/stage1_mvp would be shadowed by the reference stage1_mvp at the root.
        command = [sys.executable, "-m", "gunicorn", "--config", str(self.package.gunicorn_config),
                   self.app_spec]
        self.process = self.spawn(command, env=self.env, cwd=self.package.path.parent, output=self.output)
        if wait_seconds:
            self.wait_healthy(wait_seconds)
        return self

    def wait_healthy(self, seconds: float) -> None:
        """Poll /healthz until it answers 200; raise ServiceFailed if the process dies first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise ServiceFailed(f"{self.package.name} exited with code {self.process.returncode} "
                                    "before it was healthy", returncode=self.process.returncode)
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise ServiceFailed(f"{self.package.name} was not healthy at {self.url}/healthz within {seconds:.0f} s")

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self, *, grace: float = 10.0) -> int | None:
        return stop_process_group(self.process, grace=grace)


class ConsumerProcess:
    """`python -m <stage>.consumer`: the stage's consumer, beside gunicorn, in its own process group."""

    def __init__(self, package: StagePackage, *, env: dict[str, str | None], output: IO[str] | None = None,
                 spawn: Spawn = popen) -> None:
        assert package.consumer_module, f"{package.name} has no consumer"
        self.package, self.output, self.spawn = package, output, spawn
        merged = {**os.environ, **env, "PYTHONPATH": package_pythonpath(package)}
        self.env = {key: value for key, value in merged.items() if value is not None}
        self.process: Process | None = None

    def start(self) -> "ConsumerProcess":
        self.process = self.spawn([sys.executable, "-m", str(self.package.consumer_module)], env=self.env,
                                  cwd=self.package.path.parent, output=self.output)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would: no batch finished, no offset committed on the way out."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it stopped on its own meanwhile
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, *, grace: float = 10.0) -> int | None:
        return stop_process_group(self.process, grace=grace)


def stop_process_group(process: Process | None, *, grace: float = 10.0) -> int | None:
    """SIGTERM the leader (gunicorn stops its workers gracefully), then SIGKILL the group if needed."""
    return stop_process_groups([process], grace=grace)[0]


def stop_process_groups(processes: list[Process | None], *, grace: float = 10.0) -> list[int | None]:
    """stop_process_group for several at once: all are signalled before any is waited for, so their
    graceful stops overlap instead of adding up."""
    running = [process for process in processes if process is not None]
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        try:  # a worker orphaned by a crashed leader still belongs to the group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return [process.returncode if process else None for process in processes]

