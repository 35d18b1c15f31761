"""The embedded broker: librdkafka's mock cluster, held by one process, with a small control interface.

`python -m common.broker serve --topics stage4_kafka/topics.toml --state var/broker.json` holds the
cluster: it pre-creates the stage's topics (the mock cluster refuses the admin API's CreateTopics),
writes its addresses to the state file and serves until SIGTERM. Everything lives in memory.

`python -m common.broker status|down|up|rtt MS|offsets [--group G]` drives it for a failure drill;
`offsets` also works against real Kafka (KAFKA_BOOTSTRAP_SERVERS) since it only reads, and so does
`send TOPIC VALUE`, which publishes one message as it is (a poison message, for the DLQ drill).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import threading
import tomllib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

DEFAULT_STATE = Path("var") / "broker.json"


def read_topics(path: Path) -> dict[str, int]:
    """A stage's topics.toml as {topic: partitions}."""
    declared = tomllib.loads(path.read_text(encoding="utf-8")).get("topics", {})
    return {name: int(spec.get("partitions", 1)) for name, spec in declared.items()}


class MockCluster:
    """librdkafka's mock cluster, reached with ctypes in the librdkafka that confluent-kafka bundles."""

    def __init__(self, brokers: int = 1) -> None:
        self.lib = _librdkafka()
        error = ctypes.create_string_buffer(512)
        conf = self.lib.rd_kafka_conf_new()
        self.lib.rd_kafka_conf_set(conf, b"log_level", b"3", error, len(error))
        # A producer handle only to own the cluster: its brokers serve other processes' clients.
        self._handle = self.lib.rd_kafka_new(0, conf, error, len(error))
        if not self._handle:
            raise RuntimeError(f"librdkafka refused the holder handle: {error.value.decode()}")
        self._cluster = self.lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            raise RuntimeError("librdkafka could not create a mock cluster")
        # Real Kafka holds a new group's first rebalance 3 s for more members (group.initial.rebalance.delay.ms);
        # a drill or a test that restarts its consumer should not wait for members that are not coming.
        self.lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)
        self.broker_ids = list(range(1, brokers + 1))
        self.down, self.rtt_ms = False, 0

    @property
    def bootstrap(self) -> str:
        return self.lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int) -> None:
        code = self.lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if code:
            raise RuntimeError(f"could not create topic {name}: librdkafka error {code}")

    def set_down(self, down: bool) -> None:
        """Take every broker down (connections dropped, new ones refused) or bring them back."""
        for broker in self.broker_ids:
            (self.lib.rd_kafka_mock_broker_set_down if down else self.lib.rd_kafka_mock_broker_set_up)(
                self._cluster, broker)
        self.down = down

    def set_rtt(self, ms: int) -> None:
        """Delay every broker's answers by `ms` milliseconds (0 removes the delay)."""
        for broker in self.broker_ids:
            self.lib.rd_kafka_mock_broker_set_rtt(self._cluster, broker, ms)
        self.rtt_ms = ms

    def status(self) -> dict:
        return {"bootstrap": self.bootstrap, "brokers": len(self.broker_ids), "down": self.down,
                "rtt_ms": self.rtt_ms, "durable": False}


def _librdkafka() -> ctypes.CDLL:
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    lib = ctypes.CDLL(str(found[0]) if found else "librdkafka.so.1")
    c_void, c_char, c_int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, restype, argtypes in [
        ("rd_kafka_conf_new", c_void, []),
        ("rd_kafka_conf_set", c_int, [c_void, c_char, c_char, c_char, ctypes.c_size_t]),
        ("rd_kafka_new", c_void, [c_int, c_void, c_char, ctypes.c_size_t]),
        ("rd_kafka_mock_cluster_new", c_void, [c_void, c_int]),
        ("rd_kafka_mock_cluster_bootstraps", c_char, [c_void]),
        ("rd_kafka_mock_topic_create", c_int, [c_void, c_char, c_int, c_int]),
        ("rd_kafka_mock_broker_set_down", c_int, [c_void, ctypes.c_int32]),
        ("rd_kafka_mock_broker_set_up", c_int, [c_void, ctypes.c_int32]),
        ("rd_kafka_mock_broker_set_rtt", c_int, [c_void, ctypes.c_int32, c_int]),
        ("rd_kafka_mock_group_initial_rebalance_delay_ms", None, [c_void, ctypes.c_int32]),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def serve(*, topics: dict[str, int], state: Path, brokers: int = 1) -> None:
    """Hold a mock cluster with `topics` until SIGTERM; write its addresses to `state` once it serves."""
    cluster = MockCluster(brokers)
    for name, partitions in topics.items():
        cluster.create_topic(name, partitions)
    lock = threading.Lock()

    class Control(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer()

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            with lock:
                if url.path == "/down":
                    cluster.set_down(True)
                elif url.path == "/up":
                    cluster.set_down(False)
                elif url.path == "/rtt":
                    cluster.set_rtt(int(parse_qs(url.query).get("ms", ["0"])[0]))
                else:
                    self.send_error(404)
                    return
            self._answer()

        def _answer(self) -> None:
            body = json.dumps({**cluster.status(), "topics": topics}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # the holder's output is the runner's; keep it quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.parent.mkdir(parents=True, exist_ok=True)
    document = {"bootstrap": cluster.bootstrap, "control": f"http://127.0.0.1:{server.server_address[1]}",
                "pid": os.getpid(), "topics": topics}
    temporary = state.with_suffix(".tmp")
    temporary.write_text(json.dumps(document), encoding="utf-8")
    temporary.replace(state)  # readers never see half a file
    print(f"broker: mock cluster at {cluster.bootstrap}, control {document['control']} (in memory)", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    state.unlink(missing_ok=True)
    # Destroying the cluster waits on client connections; the data is gone either way, so just leave.
    os._exit(0)


@dataclass(frozen=True)
class BrokerControl:
    """Talks to a running holder's control interface."""

    url: str

    @classmethod
    def from_state(cls, state: Path = DEFAULT_STATE) -> "BrokerControl":
        return cls(json.loads(state.read_text(encoding="utf-8"))["control"])

    def _post(self, path: str) -> dict:
        response = requests.post(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def status(self) -> dict:
        response = requests.get(self.url + "/status", timeout=5)
        response.raise_for_status()
        return response.json()

    def down(self) -> dict:
        return self._post("/down")

    def up(self) -> dict:
        return self._post("/up")

    def rtt(self, ms: int) -> dict:
        return self._post(f"/rtt?ms={int(ms)}")


def end_offsets(bootstrap: str, topic: str, *, timeout: float = 5) -> dict[int, int]:
    """{partition: the offset the next message will get} for every partition of `topic`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe", "log_level": 3})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in sorted(partitions)}
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, *, timeout: float = 5) -> dict[int, int]:
    """{partition: committed offset} of consumer group `group` on `topic` (-1001: nothing committed yet)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "log_level": 3})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        found = consumer.committed([TopicPartition(topic, p) for p in sorted(partitions)], timeout=timeout)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="the holder's state file")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_ = commands.add_parser("serve", help="hold a mock cluster until SIGTERM")
    serve_.add_argument("--topics", type=Path, required=True, help="the stage's topics.toml")
    serve_.add_argument("--brokers", type=int, default=1)
    commands.add_parser("status", help="where the cluster is and whether it is down")
    commands.add_parser("down", help="take every broker down")
    commands.add_parser("up", help="bring every broker back")
    rtt = commands.add_parser("rtt", help="delay every answer by MS milliseconds (0: no delay)")
    rtt.add_argument("ms", type=int)
    offsets = commands.add_parser("offsets", help="end offsets per topic, and a group's committed offsets")
    offsets.add_argument("--group", help="a consumer group, e.g. task-persister")
    offsets.add_argument("--topic", action="append", default=[], help="a topic (default: the holder's topics)")
    send = commands.add_parser("send", help="publish one message as it is and wait for its ack (a drill's poison)")
    send.add_argument("topic")
    send.add_argument("value")
    send.add_argument("--key")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(topics=read_topics(args.topics), state=args.state, brokers=args.brokers)
        return 0
    if args.command == "offsets":
        return _print_offsets(args.state, args.group, args.topic)
    if args.command == "send":
        return _send(args.state, args.topic, args.value, args.key)
    try:
        control = BrokerControl.from_state(args.state)
        result = {"status": control.status, "down": control.down, "up": control.up,
                  "rtt": lambda: control.rtt(args.ms)}[args.command]()
    except (OSError, requests.RequestException) as exc:
        print(f"error: no embedded broker answers ({exc}); is `make stage4` running?", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _holder(state: Path) -> dict:
    """The embedded holder's state document ({} when none runs)."""
    return json.loads(state.read_text(encoding="utf-8")) if state.is_file() else {}


def _bootstrap(holder: dict) -> str | None:
    """KAFKA_BOOTSTRAP_SERVERS, else the embedded holder's address."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or holder.get("bootstrap")


def _send(state: Path, topic: str, value: str, key: str | None) -> int:
    from confluent_kafka import Producer

    bootstrap = _bootstrap(_holder(state))
    if not bootstrap:
        print("error: no embedded broker is running; for real Kafka set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 1
    acks: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
    producer.produce(topic, value=value.encode(), key=key.encode() if key else None,
                     on_delivery=lambda error, message: acks.append(error))
    producer.flush(10)
    if not acks or acks[0] is not None:
        print(f"error: not acknowledged ({acks[0] if acks else 'no answer in 10 s'})", file=sys.stderr)
        return 1
    print(f"acknowledged: one message on {topic}")
    return 0


def _print_offsets(state: Path, group: str | None, extra_topics: list[str]) -> int:
    holder = _holder(state)
    bootstrap, topics = _bootstrap(holder), list(extra_topics) or list(holder.get("topics", []))
    if not bootstrap or not topics:
        print("error: no embedded broker is running; for real Kafka set KAFKA_BOOTSTRAP_SERVERS and name "
              "the topics with --topic", file=sys.stderr)
        return 1
    for topic in topics:
        line = {"topic": topic, "end": end_offsets(bootstrap, topic)}
        if group:
            line["committed"] = committed_offsets(bootstrap, group, topic)
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
