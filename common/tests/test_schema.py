"""The shared DDL (a stage-0 design output): parses as MySQL, applies on SQLite and MySQL, matches the models."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import mysql

from common.schema import SCHEMA_DIR, apply_schema
from common.testing.schema_check import describe_database, describe_models, describe_mysql_ddl


def test_mysql_ddl_parses_as_mysql_and_agrees_with_the_models():
    declared = describe_mysql_ddl((SCHEMA_DIR / "mysql.sql").read_text(encoding="utf-8"))
    assert declared == describe_models(mysql.dialect())


def test_mysql_ddl_applies_on_a_real_server_and_reflects_as_the_models(database):
    if database.engine.dialect.name != "mysql":
        pytest.skip("needs DATABASE_URL on MySQL/MariaDB (CI sets it); the parse test above still ran")
    apply_schema(database.engine)  # idempotent: a second application must succeed too
    assert describe_database(database.engine) == describe_models(database.engine.dialect)


def test_sqlite_ddl_applies_and_reflects_as_the_models(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ddl.sqlite3'}")
    apply_schema(engine)
    apply_schema(engine)
    assert describe_database(engine) == describe_models(engine.dialect)


def test_sqlite_ddl_enforces_sixteen_byte_ids_and_valid_json(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ddl.sqlite3'}")
    apply_schema(engine)
    insert = text("INSERT INTO users (id, username, password_hash, created_at, updated_at) "
                  "VALUES (:id, 'someone', 'x', '2026-01-01', '2026-01-01')")
    with pytest.raises(Exception, match="CHECK constraint failed"), engine.begin() as conn:
        conn.execute(insert, {"id": b"\x00" * 15})
    with engine.begin() as conn:
        conn.execute(insert, {"id": b"\x00" * 16})
    with pytest.raises(Exception, match="CHECK constraint failed"), engine.begin() as conn:
        conn.execute(text("INSERT INTO tasks (id, user_id, type, payload, created_at, updated_at) "
                          "VALUES (:id, :uid, 't', '{not json', '2026-01-01', '2026-01-01')"),
                     {"id": b"\x01" * 16, "uid": b"\x00" * 16})
