"""Task routes: parse, call the service with this app's dependencies, render."""
from __future__ import annotations

from flask import Blueprint, g, request, url_for

from .. import runtime
from ..services import idempotency, tasks
from .auth import login_required
from .schemas import TaskCreate, TaskListQuery, task_json
from .validation import parse_body, parse_query, path_uuid

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")


@bp.post("")
@login_required
def create():
    body = parse_body(TaskCreate)  # 400/413/415 before any key is looked at: a refused body stores nothing
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    deps = runtime.current()
    accepted = tasks.create_task(database=deps.database, cache=deps.task_cache, broker=deps.broker,
                                 idempotency=deps.idempotency, user_id=g.user_id, type_=body.type,
                                 payload=body.payload, priority=body.priority, idempotency_key=key,
                                 request_id=g.get("request_id"))
    headers = {"Location": url_for(".get", task_id=str(accepted.task.id))}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    # 202, not 201: the broker has the task; the consumer stores it (GET answers it meanwhile).
    return task_json(accepted.task), accepted.status_code, headers


@bp.get("/<task_id>")
@login_required
def get(task_id: str):
    task_uuid = path_uuid(task_id)  # a malformed id stops here: 400
    deps = runtime.current()
    read = tasks.get_task(database=deps.database, cache=deps.task_cache, user_id=g.user_id, task_id=task_uuid)
    return task_json(read.task), 200, {"X-Cache": read.source}


@bp.get("")
@login_required
def list_():
    query = parse_query(TaskListQuery)
    page = tasks.list_tasks(database=runtime.current().database, user_id=g.user_id, limit=query.limit,
                            cursor=query.cursor, status=query.status.value if query.status else None)
    return {"items": [task_json(task) for task in page.items], "next_cursor": page.next_cursor}


@bp.post("/<task_id>/cancel")
@login_required
def cancel(task_id: str):
    # 202: the broker has the cancel; the consumer applies it (GET answers CANCELED meanwhile).
    task_uuid = path_uuid(task_id)
    deps = runtime.current()
    accepted = tasks.cancel_task(database=deps.database, cache=deps.task_cache, broker=deps.broker,
                                 user_id=g.user_id, task_id=task_uuid, request_id=g.get("request_id"))
    return task_json(accepted.task), accepted.status_code
