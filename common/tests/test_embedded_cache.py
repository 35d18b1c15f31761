"""The embedded cache: a real redis-server from the pinned wheel, on a free port, gone when stopped."""
from __future__ import annotations

import pytest
import redis

from common.backends import EmbeddedCache


@pytest.fixture
def embedded():
    """An embedded cache, stopped after the test."""
    cache = EmbeddedCache().start()
    yield cache
    cache.stop()


def test_it_is_a_real_redis_server_with_lua_and_pub_sub(embedded: EmbeddedCache) -> None:
    client = redis.Redis.from_url(embedded.url, decode_responses=True)
    try:
        info = client.info("server")
        assert info["redis_version"] == embedded.version and info["process_id"] == embedded.process.pid
        assert client.eval("return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 5000)", 1, "k", "v") == "OK"
        assert client.set("k", "other", nx=True) is None and 0 < client.pttl("k") <= 5000
        subscriber = client.pubsub()
        subscriber.subscribe("channel")
        assert client.publish("channel", "hello") == 1
    finally:
        client.close()


def test_two_servers_get_their_own_ports_and_stop_leaves_nothing_listening() -> None:
    first, second = EmbeddedCache().start(), EmbeddedCache().start()
    try:
        assert first.port != second.port
        redis.Redis.from_url(first.url).set("only-here", 1)
        assert redis.Redis.from_url(second.url).get("only-here") is None
    finally:
        first.stop()
        second.stop()
    assert first.process.returncode is not None and second.process.returncode is not None
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(first.url, socket_connect_timeout=1).ping()
