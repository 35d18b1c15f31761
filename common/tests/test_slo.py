"""slo.yaml, the SLOs stage 8 grades against, holds every required key."""
from __future__ import annotations

import json

import jsonschema

from common import contract

REQUIRED = {"version", "service", "environment", "availability", "error_rate", "durability", "latency_ms",
            "throughput_rps", "consumer", "cache"}
ENDPOINTS = {"create_task", "get_task", "list_tasks", "login"}


def test_slo_file_validates_against_its_schema():
    schema = json.loads((contract.CONTRACT_DIR / "slo.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(contract.slo())


def test_slo_file_holds_every_required_key_with_ordered_percentiles():
    slo = contract.slo()
    assert REQUIRED <= set(slo)
    assert slo["durability"]["max_acknowledged_tasks_lost"] == 0
    assert ENDPOINTS <= set(slo["latency_ms"])
    for endpoint, targets in slo["latency_ms"].items():
        assert 0 < targets["p50"] <= targets["p95"] <= targets["p99"], endpoint
