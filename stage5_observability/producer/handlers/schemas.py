"""Request models (validation) and response renderers: the HTTP shapes of the contract."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from common.models import Task, TaskStatus, User
from common.timeutil import rfc3339


class RequestModel(BaseModel):
    # Unknown fields are refused, so a client can never set id, status or owner.
    model_config = ConfigDict(extra="forbid", strict=True)


Username = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
Password = Annotated[StrictStr, Field(min_length=8, max_length=128)]


class Credentials(RequestModel):
    username: Username
    password: Password


def _whole_number_as_int(value: Any) -> Any:
    """7.0 becomes 7: JSON Schema's integer is a number with no fraction, however it is written."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class TaskCreate(RequestModel):
    type: Annotated[StrictStr, Field(pattern=r"^[a-z0-9_.-]{1,64}$")]
    payload: dict[str, Any]
    # Strict otherwise: 7.5, "7" and true are still refused.
    priority: Annotated[StrictInt, Field(ge=0, le=9), BeforeValidator(_whole_number_as_int)] = 5


class TaskListQuery(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False)  # query strings arrive as text

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    status: TaskStatus | None = None


def user_json(user: User) -> dict[str, Any]:
    return {"id": str(user.id), "username": user.username, "created_at": rfc3339(user.created_at)}


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "type": task.type,
        "payload": task.payload,
        "priority": task.priority,
        "status": task.status,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
    }
