"""Apply the hand-written DDL (not `metadata.create_all`): what runs is what was reviewed."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

SCHEMA_DIR = Path(__file__).resolve().parent
TABLES = ("users", "tasks", "idempotency_keys")


def ddl_path(dialect_name: str) -> Path:
    """Return the DDL file for a SQLAlchemy dialect name."""
    return SCHEMA_DIR / ("sqlite.sql" if dialect_name == "sqlite" else "mysql.sql")


def statements(sql: str) -> list[str]:
    """Split a DDL file into statements, dropping `--` comments."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def apply_schema(engine: Engine) -> None:
    """Create the tables if they do not exist (every statement is IF NOT EXISTS)."""
    with engine.begin() as conn:
        for stmt in statements(ddl_path(engine.dialect.name).read_text()):
            conn.execute(text(stmt))
