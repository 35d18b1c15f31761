"""The consumer's persist rate (stage 4 on): the same messages landed in batches, then one at a time.

The messages are published once; two consumer groups then read all of them, one with the stage's
batch size and one with CONSUMER_BATCH_MAX=1 (a transaction and an offset commit per message), the
rows landed by the first being deleted before the second starts. Each rate is messages over the
time from the group's first commit to its last, so joining the group is not counted.
"""
from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .backends import backend_env
from .broker import committed_offsets, end_offsets, read_topics
from .connections import database_engine
from .ids import uuid7
from .models import Task, User
from .runner import prepare_backends
from .service import ConsumerProcess, free_port
from .stages import Stage, StagePackage
from .timeutil import rfc3339, utcnow

BATCHED, ROW_AT_A_TIME = "batched", "row-at-a-time"


def consumer_rates(package: StagePackage, target: Stage, *, messages: int, batch_max: int = 500) -> dict:
    """Land `messages` task.created events batched and row at a time; print and return both rates."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        backends = prepare_backends(target.backends, var_dir=Path(scratch) / "var", stack=stack,
                                    topics=package.topics)
        env = backend_env(backends)
        bootstrap = backends["broker"].url
        topic = next(iter(read_topics(package.topics)))  # the task topic is declared first
        engine = database_engine(backends["database"].url)
        stack.callback(engine.dispose)
        with Session(engine) as session:
            user = User(username=f"bench{uuid7().hex[-12:]}", password_hash="-")
            session.add(user)
            session.commit()
            user_id = user.id
        _publish(bootstrap, topic, user_id=str(user_id), count=messages)
        results = {}
        for mode, batch in ((BATCHED, batch_max), (ROW_AT_A_TIME, 1)):
            with Session(engine) as session:
                session.execute(delete(Task).where(Task.user_id == user_id))
                session.commit()
            group = f"bench-{mode}"
            # From stage 5 on: a metrics port of its own, and its spans in the scratch folder.
            consumer = ConsumerProcess(package, env={**env, "TASK_TOPIC": topic, "CONSUMER_GROUP": group,
                                                     "CONSUMER_BATCH_MAX": str(batch),
                                                     "CONSUMER_METRICS_PORT": str(free_port()),
                                                     "TRACE_FILE": str(Path(scratch) / "spans.jsonl")}).start()
            try:
                seconds, counted = _time_drain(bootstrap, group, topic, total=messages)
            finally:
                consumer.stop()
            with Session(engine) as session:
                landed = session.scalar(select(func.count()).select_from(Task).where(Task.user_id == user_id))
            results[mode] = {"batch_max": batch, "messages": counted, "seconds": round(seconds, 3),
                             "tasks_per_s": round(counted / seconds, 1), "landed": landed}
    speedup = results[BATCHED]["tasks_per_s"] / results[ROW_AT_A_TIME]["tasks_per_s"]
    database = backends["database"].description if backends["database"].embedded else backends["database"].safe_url
    print(f"consumer, {messages} task.created messages, database {database}:")
    for mode, figures in results.items():
        print(f"  {mode:<14} batch {figures['batch_max']:>4}: {figures['tasks_per_s']:>9.1f} tasks/s "
              f"({figures['messages']} in {figures['seconds']:.2f} s; {figures['landed']} rows landed)")
    print(f"  batched is {speedup:.2f}x row-at-a-time (targets: 5,000 tasks/s batched on MariaDB, 5x)")
    return {**results, "speedup": round(speedup, 2), "database": database}


def _publish(bootstrap: str, topic: str, *, user_id: str, count: int) -> None:
    """Publish `count` task.created events in the stage's event format, as the API would."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 20, "log_level": 3})
    for n in range(count):
        now, task_id = rfc3339(utcnow()), str(uuid7())
        event = {"event": "task.created", "version": 1, "occurred_at": now, "idempotency": None,
                 "task": {"id": task_id, "user_id": user_id, "type": "bench.job", "payload": {"n": n},
                          "priority": 5, "status": "PENDING", "created_at": now, "updated_at": now}}
        while True:
            try:
                producer.produce(topic, key=task_id.encode(), value=json.dumps(event).encode(),
                                 headers={"event-type": "task.created", "content-type": "application/json"})
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the bench's messages were not all delivered within 60 s")


def _time_drain(bootstrap: str, group: str, topic: str, *, total: int, limit: float = 600) -> tuple[float, int]:
    """Seconds from the group's first commit to its last, and the messages landed in between."""
    ends = end_offsets(bootstrap, topic)
    deadline, first = time.monotonic() + limit, None
    while time.monotonic() < deadline:
        done = sum(max(offset, 0) for offset in committed_offsets(bootstrap, group, topic).values())
        if first is None and done:
            first = (time.monotonic(), done)
        if done >= sum(ends.values()):
            assert first is not None
            return max(time.monotonic() - first[0], 1e-3), done - first[1]
        time.sleep(0.02)  # a sampling interval, not a wait for an event
    raise RuntimeError(f"group {group} did not drain {total} messages within {limit:.0f} s")
