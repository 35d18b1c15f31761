"""The API contract, served as JSON and as a self-contained HTML page (no CDN needed)."""
from __future__ import annotations

from flask import Blueprint, render_template

from common import contract

bp = Blueprint("docs", __name__)
METHODS = ("get", "post", "put", "patch", "delete")


@bp.get("/openapi.json")
def openapi_json():
    return contract.openapi()


@bp.get("/docs")
def docs_page():
    spec = contract.openapi()
    operations = [
        {"method": method.upper(), "path": path, **operation}
        for path, item in spec["paths"].items()
        for method, operation in item.items() if method in METHODS
    ]
    return render_template("docs.html", info=spec["info"], operations=operations)
