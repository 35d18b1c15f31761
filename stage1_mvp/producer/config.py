"""Configuration read from the environment (stage 2 replaces this with typed, validated settings)."""
from __future__ import annotations

import os
from typing import Any

from common.security import DEFAULT_PASSWORD_HASH_PROFILE

# Good enough for a laptop; stage 2 refuses to start in production with it.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789abcdef"


def load_config() -> dict[str, Any]:
    """Return the Flask config mapping for this process."""
    return {
        # Set by the runner (`make stageN`) to the real or the embedded database.
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "JWT_SECRET": os.environ.get("JWT_SECRET", DEV_JWT_SECRET),
        "ACCESS_TOKEN_TTL_SECONDS": int(os.environ.get("ACCESS_TOKEN_TTL_SECONDS", "900")),
        # Argon2id's cost (common/security.py): strong by default; the test harness asks for "cheapest".
        "PASSWORD_HASH_PROFILE": os.environ.get("PASSWORD_HASH_PROFILE", DEFAULT_PASSWORD_HASH_PROFILE),
        # Werkzeug answers 413 past this many bytes of request body.
        "MAX_CONTENT_LENGTH": 64 * 1024,
    }
