"""Take a dependency away, make it hang, give it back, and watch what clients send it, for drills."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

# Per connection: a fresh function that is handed every chunk the client sends to the server.
StreamObserver = Callable[[], Callable[[bytes], None]]


class TcpProxy:
    """A loopback TCP proxy in front of a real server.

    `cut()` is the server vanishing from the network; `hang()` is a server that accepts connections
    and reads requests but never answers (nothing is forwarded either way until `restore()`); `slow(ms)`
    is a server that answers every request `ms` late.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, observe: StreamObserver | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._observe = observe
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._delay = 0.0  # seconds each chunk a client sends waits before it is forwarded
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until restore()."""
        self._cut.set()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def hang(self) -> None:
        """Keep connections open and accept new ones, but forward nothing until restore()."""
        self._flowing.clear()

    def slow(self, ms: int) -> None:
        """Forward every chunk a client sends `ms` late (its answer comes that much later), until restore()."""
        self._delay = ms / 1000

    def restore(self) -> None:
        self._cut.clear()
        self._delay = 0.0
        self._flowing.set()

    @contextlib.contextmanager
    def cut_off(self) -> Iterator[None]:
        """cut() for the duration of the block, then restore()."""
        self.cut()
        try:
            yield
        finally:
            self.restore()

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """hang() for the duration of the block, then restore()."""
        self.hang()
        try:
            yield
        finally:
            self.restore()

    @contextlib.contextmanager
    def slowed(self, ms: int) -> Iterator[None]:
        """slow(ms) for the duration of the block, then restore()."""
        self.slow(ms)
        try:
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self.cut()
        self._flowing.set()  # releases the pipes held by a hang; their sockets are closed
        _close(self._listener)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, server))
            observer = self._observe() if self._observe else None
            threading.Thread(target=self._pipe, args=(client, server, observer, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, None, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, observer: Callable[[bytes], None] | None,
              to_server: bool) -> None:
        try:
            while chunk := src.recv(65536):
                self._flowing.wait()  # a hang holds the bytes here: late, never lost or reordered
                if to_server and self._delay:  # requests only: one delay per round trip, not two
                    time.sleep(self._delay)
                if observer:
                    observer(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


class MysqlQueryLog:
    """The statements clients send a MySQL/MariaDB server, read off the wire by a TcpProxy.

    A client packet is a 3-byte little-endian length, a sequence id, then the payload. A command
    starts a new exchange (sequence id 0); COM_QUERY (0x03) carries the statement text. The
    connection phase (handshake response, sequence 1) is skipped by that rule. Assumes no TLS
    and no compression, as for a local test server.
    """

    COM_QUERY = 0x03

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recordings: list[list[str]] = []

    def connection(self) -> Callable[[bytes], None]:
        """A parser for one client connection's byte stream (pass the class's instance as `observe`)."""
        buffer = bytearray()

        def feed(chunk: bytes) -> None:
            buffer.extend(chunk)
            while len(buffer) >= 4:
                length = int.from_bytes(buffer[:3], "little")
                if len(buffer) < 4 + length:
                    return
                sequence, payload = buffer[3], bytes(buffer[4:4 + length])
                del buffer[:4 + length]
                if sequence == 0 and payload[:1] == bytes([self.COM_QUERY]):
                    self._record(payload[1:].decode("utf-8", errors="replace"))

        return feed

    def _record(self, statement: str) -> None:
        with self._lock:
            for recording in self._recordings:
                recording.append(statement)

    @contextlib.contextmanager
    def recording(self):
        """Collect, into the list this yields, every statement sent while the block runs."""
        statements: list[str] = []
        with self._lock:
            self._recordings.append(statements)
        try:
            yield statements
        finally:
            with self._lock:
                self._recordings.remove(statements)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
