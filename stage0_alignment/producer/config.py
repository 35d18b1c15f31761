"""Configuration read from the environment (stage 2 replaces this with typed, validated settings)."""
from __future__ import annotations

import os
from typing import Any


def load_config() -> dict[str, Any]:
    """Return the Flask config mapping for this process."""
    return {
        # Set by the runner (`make stageN`) to the real or the embedded database.
        "DATABASE_URL": os.environ["DATABASE_URL"],
    }
