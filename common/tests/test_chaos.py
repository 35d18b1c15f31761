import socket
import threading

import pytest

from common.testing.chaos import MysqlQueryLog, TcpProxy


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


def test_a_hung_proxy_keeps_connections_open_forwards_nothing_and_delivers_after_restore(echo_server):
    proxy = TcpProxy("127.0.0.1", echo_server)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.3) as held:
            proxy.hang()
            held.sendall(b"ping")
            with pytest.raises(TimeoutError):
                held.recv(4)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.3) as late:
                late.sendall(b"ping")  # a new connection is accepted, and hangs too
                with pytest.raises(TimeoutError):
                    late.recv(4)
            proxy.restore()
            held.settimeout(2)
            assert held.recv(4) == b"ping", "the held request is delivered late, not lost"
    finally:
        proxy.close()


def mysql_packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def test_the_query_log_reads_com_query_statements_off_the_wire(echo_server):
    log = MysqlQueryLog()
    proxy = TcpProxy("127.0.0.1", echo_server, observe=log.connection)
    stream = b"".join([
        mysql_packet(1, b"\x85\xa6\xff\x01 a handshake response, not a command"),
        mysql_packet(0, b"\x03SELECT 1 FROM tasks"),
        mysql_packet(0, b"\x0e"),  # COM_PING carries no statement
        mysql_packet(0, b"\x03" + "UPDATE tasks SET type = 'é'".encode()),
    ])
    late = mysql_packet(0, b"\x03SELECT after the recording")
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as conn:
            with log.recording() as statements:
                for piece in (stream[:5], stream[5:40], stream[40:]):  # packets split across reads
                    conn.sendall(piece)
                echoed = b""
                while len(echoed) < len(stream):  # echoed back: the proxy has passed every byte on
                    echoed += conn.recv(4096)
            conn.sendall(late)
            conn.recv(4096)
        assert statements == ["SELECT 1 FROM tasks", "UPDATE tasks SET type = 'é'"]
    finally:
        proxy.close()


def test_the_services_reach_redis_through_the_proxy_with_its_credentials_and_database():
    from common.backends import Backend
    from common.testing.harness import Cache

    proxy = TcpProxy("127.0.0.1", 6379)
    try:
        cache = Cache(Backend("cache", "redis://:s3cret@10.1.2.3:6390/14", False, "real"), proxy)
        assert cache.service_url == f"redis://:s3cret@127.0.0.1:{proxy.port}/14"
        cache.client.close()
    finally:
        proxy.close()
