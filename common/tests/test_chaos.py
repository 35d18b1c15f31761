import socket
import threading

import pytest

from common.testing.chaos import TcpProxy


@pytest.fixture
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")],
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def roundtrip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"ping")
        return conn.recv(4)


def is_dropped(port: int) -> bool:
    """A new connection through a cut proxy is accepted and closed at once, like a dead upstream."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        try:
            conn.sendall(b"ping")
            return conn.recv(4) == b""
        except ConnectionError:
            return True


def test_proxy_passes_traffic_cuts_it_and_restores_it(echo_server):
    proxy = TcpProxy("127.0.0.1", echo_server)
    try:
        assert roundtrip(proxy.port) == b"ping"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as held:
            held.sendall(b"ping")
            assert held.recv(4) == b"ping"
            proxy.cut()
            assert held.recv(4) == b"", "an open connection must be dropped"
        assert is_dropped(proxy.port)
        proxy.restore()
        assert roundtrip(proxy.port) == b"ping"
    finally:
        proxy.close()
