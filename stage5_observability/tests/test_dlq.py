"""Poison messages go to the dead-letter topic with the reason in headers; the DLQ tool replays and discards them."""
from __future__ import annotations

import json
import re

import pytest

from common.ids import uuid7

from .kafka_checks import DLQ_HEADERS, DLQ_TOPIC, TASK_TOPIC, canceled_event, created_event, drain, event_headers, \
    messages_for, publish, run_dlq, task_row, wait_row

PARTITION = 2  # all on one partition, so the poison sits between the valid messages in one ordered stream


def record(value: dict | bytes, *, key: str | None = None, event_type: str = "task.created") -> tuple:
    """A (key, value, headers, partition) record; the key is the task id unless given."""
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return ((key or value["task"]["id"]).encode(), body, event_headers(event_type), PARTITION)


def letters_since(broker, start: dict[int, int], keys: list[str]) -> dict[str, object]:
    """The dead letters (from `start`) whose key is one of `keys`, by key."""
    return {m.key.decode(): m for m in broker.read(DLQ_TOPIC, start=start) if m.key and m.key.decode() in keys}


@pytest.mark.check("S4-AC7")
def test_poison_is_dead_lettered_with_its_headers_while_the_messages_around_it_land(service, alice, broker,
                                                                                    database):
    before, after = created_event(alice.id), created_event(alice.id, priority=1)
    out_of_range = created_event(alice.id, priority=42)
    unknown_event = {**created_event(alice.id), "event": "task.exploded"}
    missing_field = created_event(alice.id)
    del missing_field["task"]["type"]
    undecodable_key = str(uuid7())
    records = [record(before), record(b"not json", key=undecodable_key), record(out_of_range),
               record(unknown_event, event_type="task.exploded"), record(missing_field), record(after)]
    dead_start = broker.end_offsets(DLQ_TOPIC)
    placed = publish(broker.bootstrap, records)
    drain(service)

    assert wait_row(database, before["task"]["id"], seconds=5)["status"] == "PENDING"
    assert wait_row(database, after["task"]["id"], seconds=5)["priority"] == 1
    poison = {key.decode(): (value, headers, offset) for (key, value, headers, _), (_, offset)
              in list(zip(records, placed))[1:-1]}
    assert not [key for key in poison if key != undecodable_key and task_row(database, key)], "a poison message landed"
    letters = letters_since(broker, dead_start, list(poison))
    assert sorted(letters) == sorted(poison), f"dead-lettered {len(letters)} of {len(poison)} poison messages"
    for key, letter in letters.items():
        value, headers, offset = poison[key]
        assert letter.value == value, "a dead letter's value differs from the original message"
        error = letter.headers.get("dlq-error", b"").decode()
        assert error.strip() and "\n" not in error, f"dlq-error must be one non-empty line: {error!r}"
        assert {name: letter.headers.get(name) for name in DLQ_HEADERS[1:4]} == {
            "dlq-original-topic": TASK_TOPIC.encode(), "dlq-original-partition": str(PARTITION).encode(),
            "dlq-original-offset": str(offset).encode()}
        assert int(letter.headers.get("dlq-attempts", b"0")) >= 1, "the dlq-attempts header is missing or below 1"
        assert letter.headers.get("event-type") == dict(headers)["event-type"], "the original headers were dropped"


def dlq(service, *args: str) -> str:
    """Run the DLQ tool, expect success, return what it printed."""
    done = run_dlq(service, *args)
    assert done.returncode == 0, f"dlq {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}"
    return done.stdout


def lists(listing: str, offset: int, key: str) -> bool:
    """Whether the tool's `list` output shows the letter at `offset` (its line names the offset and the key)."""
    return any(key in line and re.search(rf"(?<!\S){offset}(?!\S)", line) for line in listing.splitlines())


@pytest.mark.check("S4-AC7")
def test_the_dlq_tool_replays_a_fixed_letter_which_lands_once_and_discards_another(service, alice, broker,
                                                                                     database):
    task_id, broken_key = str(uuid7()), str(uuid7())
    dead_start = broker.end_offsets(DLQ_TOPIC)
    # A cancel published before its task exists cannot land ("unknown task"): fixed once the task is there.
    publish(broker.bootstrap, [record(canceled_event(alice.id, task_id), event_type="task.canceled"),
                               record(b"{broken", key=broken_key)])
    drain(service)
    letters = letters_since(broker, dead_start, [task_id, broken_key])
    assert sorted(letters) == sorted([task_id, broken_key]), "the cancel of an unknown task was not dead-lettered"
    cancel_at, broken_at = letters[task_id].offset, letters[broken_key].offset
    listing = dlq(service, "list")
    assert lists(listing, cancel_at, task_id) and lists(listing, broken_at, broken_key), listing
    shown = dlq(service, "show", str(cancel_at))
    assert task_id in shown and letters[task_id].headers["dlq-error"].decode() in shown, shown

    publish(broker.bootstrap, [record(created_event(alice.id, id=task_id))])  # the fix: the task now exists
    drain(service)
    wait_row(database, task_id, status="PENDING", seconds=5)
    task_start, dead_end = broker.end_offsets(TASK_TOPIC), broker.end_offsets(DLQ_TOPIC)
    dlq(service, "replay", str(cancel_at))
    drain(service)
    assert task_row(database, task_id)["status"] == "CANCELED", "the replayed cancel did not land"
    replayed = messages_for(broker, task_id, start=task_start)
    assert [m.headers.get("event-type") for m in replayed] == [b"task.canceled"], "the letter was not replayed once"
    assert not letters_since(broker, dead_end, [task_id]), "the replayed letter was dead-lettered again"

    dlq(service, "discard", str(broken_at))
    listing = dlq(service, "list")
    assert not lists(listing, cancel_at, task_id), f"list still shows the replayed letter:\n{listing}"
    assert not lists(listing, broken_at, broken_key), f"list still shows the discarded letter:\n{listing}"
