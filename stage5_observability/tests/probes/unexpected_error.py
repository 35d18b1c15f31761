"""Probe: an exception nobody planned for must become a 500 problem that says nothing about the internals.

Run as `python unexpected_error.py <package>` with the implementation importable; prints one JSON
object: the status, content type, body and X-Request-ID of the answer. It relies only on the
documented entry point `<package>.producer.create_app()`: it adds a route that raises to that app
and calls it through Flask's test client, in a process of its own.
"""
from __future__ import annotations

import importlib
import json
import sys

LEAKY_MESSAGE = "internals: SELECT password_hash FROM users WHERE id = 42"


def main(package: str) -> None:
    app = importlib.import_module(f"{package}.producer").create_app()

    @app.get("/__probe_unexpected_error")
    def explode():
        raise RuntimeError(LEAKY_MESSAGE)

    response = app.test_client().get("/__probe_unexpected_error")
    json.dump({"status": response.status_code, "type": response.content_type, "body": response.get_json(),
               "request_id": response.headers.get("X-Request-ID")}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
