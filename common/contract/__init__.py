"""The machine-readable contracts every stage shares: the OpenAPI document and the SLOs."""
from __future__ import annotations

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
