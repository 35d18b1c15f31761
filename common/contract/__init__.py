"""The machine-readable contracts every stage shares: the OpenAPI document and the SLOs."""
from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CONTRACT_DIR = Path(__file__).resolve().parent
OPENAPI_PATH = CONTRACT_DIR / "openapi.yaml"
SLO_PATH = CONTRACT_DIR / "slo.yaml"


@cache
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document, parsed once per process."""
    return yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))


def slo() -> dict[str, Any]:
    """The service level objectives that stage 8 grades against."""
    return yaml.safe_load(SLO_PATH.read_text(encoding="utf-8"))


def openapi_for_stage(number: int) -> dict[str, Any]:
    """The contract as stage `number` serves it: operations, parameters, responses and response
    headers marked `x-since-stage` later, or `x-until-stage` earlier, than this stage are left out."""
    spec = copy.deepcopy(openapi())

    def applies(node: dict[str, Any]) -> bool:
        node = resolve_ref(spec, node)
        return node.get("x-since-stage", 0) <= number <= node.get("x-until-stage", number)

    for path in list(spec["paths"]):
        item = spec["paths"][path]
        for method in [m for m in item if m in _METHODS]:
            operation = item[method]
            if not applies(operation):
                del item[method]
                continue
            operation["parameters"] = [p for p in operation.get("parameters", []) if applies(p)]
            operation["responses"] = {s: r for s, r in operation["responses"].items() if applies(r)}
            for response in operation["responses"].values():
                if "headers" in response:
                    response["headers"] = {n: h for n, h in response["headers"].items() if applies(h)}
        if not any(m in item for m in _METHODS):
            del spec["paths"][path]
    return spec


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def resolve_ref(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` pointers (within the document) until a node without one."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
