"""Turn a request into validated input, or into a 400/413/415 problem that says exactly what is wrong."""
from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ValidationError

from common.errors import MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from common.ids import parse_uuid

Model = TypeVar("Model", bound=BaseModel)


def parse_body(model: type[Model]) -> Model:
    """Parse a JSON request body into `model`."""
    if not request.is_json:
        raise UnsupportedMediaType()
    raw = request.get_data(cache=False)  # 413 when Content-Length is past MAX_CONTENT_LENGTH
    if request.content_length is None and len(raw) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # A chunked body is silently cut at the limit, so one that reaches it was too large.
        raise PayloadTooLarge()
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
        json.dumps(document, ensure_ascii=False).encode("utf-8")  # lone surrogates cannot be stored
    except (ValueError, UnicodeError):
        raise MalformedJson() from None
    return validate(model, document)


def parse_query(model: type[Model]) -> Model:
    """Parse the query string into `model`; a repeated parameter is an error, not a silent pick."""
    values: dict[str, Any] = {}
    for key, items in request.args.lists():
        if len(items) > 1:
            raise ValidationFailed(errors=[{"field": key, "message": "give this parameter once"}])
        values[key] = items[0]
    return validate(model, values)


def validate(model: type[Model], document: Any) -> Model:
    if not isinstance(document, dict):
        raise ValidationFailed(errors=[{"field": "", "message": "the body must be a JSON object"}])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(errors=[
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors(include_url=False)
        ]) from None


def path_uuid(value: str, *, field: str = "task_id") -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise ValidationFailed(errors=[{"field": field, "message": "must be a UUID"}])
    return parsed


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
