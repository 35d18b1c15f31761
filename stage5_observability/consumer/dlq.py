"""The DLQ tool: `python -m <stage>.consumer.dlq list | show OFFSET | replay OFFSET | discard OFFSET`.

A letter is named by its offset in the DLQ topic (one partition, topics.toml, so an offset is unique).
"Handled" is recorded in the DLQ topic itself, not in the database (the shared schema stays as it is):
replay and discard append a marker record, key `dlq-handled:<offset>`, empty value, headers
`dlq-handled: <offset>`, `dlq-action: replayed|discarded`, `dlq-handled-at: <rfc3339>`. `list` reads the
whole topic and hides every letter a marker names; the consumer never reads this topic.
Replay publishes the letter's key and value to the task topic with its original headers plus
`dlq-replayed-from: <offset>`, waits for the broker's ack, then writes the marker: a crash in between
leaves the letter listed, and replaying it twice lands it once (landing is idempotent).
Settings: KAFKA_BOOTSTRAP_SERVERS (or --bootstrap; else the embedded broker of var/broker.json),
TASK_TOPIC, DLQ_TOPIC, from the environment or `.env`. Exit codes: 0 ok, 1 not found or already
handled (or no broker), 2 usage.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic_settings import BaseSettings

from common.timeutil import rfc3339

from ..shared.settings import SharedSettings
from . import dead_letters
from .dead_letters import ACTION, ATTEMPTS, ERROR, HANDLED, OFFSET, PARTITION, REPLAYED_FROM, TOPIC

BROKER_STATE = Path("var") / "broker.json"  # where `make stage<N>` leaves the embedded broker's address
HANDLED_AT = "dlq-handled-at"
TIMEOUT = 10.0


class ToolSettings(BaseSettings):
    """The three settings the tool needs, read as the service reads its own (no database, no cache)."""

    model_config = SharedSettings.model_config
    kafka_bootstrap_servers: str | None = None
    task_topic: str = SharedSettings.model_fields["task_topic"].default
    dlq_topic: str = SharedSettings.model_fields["dlq_topic"].default


@dataclass(frozen=True)
class Letter:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        return next((v.decode(errors="replace") for k, v in self.headers if k == name and v is not None), "")


def read(bootstrap: str, topic: str) -> tuple[dict[int, Letter], dict[int, str]]:
    """Every letter of the DLQ by offset, and the offsets already handled (with how)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-tool-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 3})
    letters: dict[int, Letter] = {}
    handled: dict[int, str] = {}
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        if high <= low:
            return letters, handled
        consumer.assign([TopicPartition(topic, 0, low)])
        last = low - 1
        while last < high - 1:
            message = consumer.poll(TIMEOUT)
            if message is None:
                raise KafkaException(f"reading {topic} stopped at offset {last + 1} of {high}")
            if message.error():
                continue
            last = message.offset()
            letter = Letter(last, message.key(), message.value(), list(message.headers() or []))
            if letter.header(HANDLED):
                handled[int(letter.header(HANDLED))] = f"{letter.header(ACTION)} at {letter.header(HANDLED_AT)}"
            else:
                letters[last] = letter
    finally:
        consumer.close()
    return letters, handled


def publish(bootstrap: str, topic: str, *, key: bytes | None, value: bytes | None,
            headers: list[tuple[str, bytes]]) -> None:
    """Produce one record and wait for the broker's acknowledgement."""
    producer = dead_letters.producer(bootstrap, timeout_ms=int(TIMEOUT * 1000))
    dead_letters.deliver(producer, topic, [(key, value, headers)], timeout=TIMEOUT * 2)


def show_line(letter: Letter) -> str:
    key = (letter.key or b"").decode(errors="replace") or "-"
    origin = f"{letter.header(TOPIC)}[{letter.header(PARTITION)}]@{letter.header(OFFSET)}"
    return (f"{letter.offset:>7}  {key:<36}  {letter.header('event-type') or '-':<14}  {origin:<20}  "
            f"{letter.header(ATTEMPTS) or '-':>8}  {letter.header(ERROR)}")


def command_list(letters: dict[int, Letter], handled: dict[int, str]) -> int:
    pending = [letter for offset, letter in sorted(letters.items()) if offset not in handled]
    print(f"{'offset':>7}  {'key':<36}  {'event':<14}  {'original':<20}  {'attempts':>8}  error")
    for letter in pending:
        print(show_line(letter))
    print(f"{len(pending)} letter(s) to handle, {len(handled)} handled", file=sys.stderr)
    return 0


def command_show(letter: Letter, handled: str | None) -> int:
    print(f"offset:  {letter.offset}")
    print(f"key:     {(letter.key or b'').decode(errors='replace')}")
    print(f"status:  {'handled: ' + handled if handled else 'to handle'}")
    print("headers:")
    for name, value in letter.headers:
        print(f"  {name}: {(value or b'').decode(errors='replace')}")
    print("value:")
    try:
        print(json.dumps(json.loads(letter.value or b""), indent=2, ensure_ascii=False))
    except ValueError:
        print(repr(letter.value))
    return 0


def mark(bootstrap: str, dlq_topic: str, letter: Letter, action: str) -> None:
    """Record that the letter was handled, so `list` no longer shows it."""
    now = rfc3339(datetime.now(timezone.utc))
    publish(bootstrap, dlq_topic, key=f"{HANDLED}:{letter.offset}".encode(), value=b"",
            headers=[(HANDLED, str(letter.offset).encode()), (ACTION, action.encode()), (HANDLED_AT, now.encode())])


def command_replay(bootstrap: str, settings: ToolSettings, letter: Letter) -> int:
    original = [(k, v) for k, v in letter.headers if k not in dead_letters.DLQ_HEADERS and k != REPLAYED_FROM]
    publish(bootstrap, settings.task_topic, key=letter.key, value=letter.value,
            headers=[*original, (REPLAYED_FROM, str(letter.offset).encode())])
    mark(bootstrap, settings.dlq_topic, letter, "replayed")
    print(f"replayed letter {letter.offset} to {settings.task_topic}")
    return 0


def parser() -> argparse.ArgumentParser:
    tool = argparse.ArgumentParser(prog=f"python -m {__package__}.dlq", description=__doc__.splitlines()[0])
    tool.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    commands = tool.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the letters not yet replayed or discarded")
    for name, what in (("show", "one letter with its headers and value"),
                       ("replay", "publish a letter to the task topic again, and mark it handled"),
                       ("discard", "mark a letter handled without replaying it")):
        commands.add_parser(name, help=what).add_argument("offset", type=int, help="the letter's offset in the DLQ")
    return tool


def bootstrap_of(given: str | None, settings: ToolSettings) -> str | None:
    if given or settings.kafka_bootstrap_servers:
        return given or settings.kafka_bootstrap_servers
    if BROKER_STATE.is_file():  # `make stage<N>` with the embedded broker
        return json.loads(BROKER_STATE.read_text(encoding="utf-8"))["bootstrap"]
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on a usage error
    settings = ToolSettings(_env_file=os.environ.get("ENV_FILE", ".env") or None)  # type: ignore[call-arg]
    bootstrap = bootstrap_of(args.bootstrap, settings)
    if not bootstrap:
        print("error: no broker: set KAFKA_BOOTSTRAP_SERVERS, pass --bootstrap, or start the stage (`make stage<N>`)",
              file=sys.stderr)
        return 1
    try:
        letters, handled = read(bootstrap, settings.dlq_topic)
        if args.command == "list":
            return command_list(letters, handled)
        letter = letters.get(args.offset)
        if letter is None:
            print(f"error: no letter at offset {args.offset} of {settings.dlq_topic}", file=sys.stderr)
            return 1
        if args.command == "show":
            return command_show(letter, handled.get(args.offset))
        if args.offset in handled:
            print(f"error: letter {args.offset} was already handled ({handled[args.offset]})", file=sys.stderr)
            return 1
        if args.command == "replay":
            return command_replay(bootstrap, settings, letter)
        mark(bootstrap, settings.dlq_topic, letter, "discarded")
        print(f"discarded letter {args.offset}")
        return 0
    except (KafkaException, dead_letters.DeliveryFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
