"""The stage's view of the API contract: JSON at /openapi.json, Swagger UI at /docs (no CDN needed)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_swagger_ui import get_swaggerui_blueprint

from common import contract

from ... import NUMBER as STAGE_NUMBER

bp = Blueprint("docs", __name__)
# flask-swagger-ui ships Swagger UI's scripts and styles; nested here, it serves them under /docs/
# (and its own page at /docs/, kept offline too: no call to the online validator).
bp.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={"validatorUrl": None},
                                              blueprint_name="swagger_ui"))


@bp.get("/openapi.json")
def openapi_json():
    # Only this stage's view: what it documents is what it answers.
    return contract.openapi_for_stage(STAGE_NUMBER)


@bp.get("/docs")
def docs_page():
    return render_template("docs.html", info=contract.openapi()["info"], assets="/docs", spec_url="/openapi.json")
