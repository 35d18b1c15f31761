"""Describe a schema three ways (models, a live database, the MySQL DDL text) in one comparable form."""
from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import Dialect
from sqlglot import exp

from ..models import Base

Description = dict[str, dict[str, Any]]
_INT_DISPLAY_WIDTH = re.compile(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)\(\d+\)")


def _table(columns, pk, uniques, indexes, fks) -> dict[str, Any]:
    return {"columns": columns, "primary_key": tuple(pk), "unique": set(map(tuple, uniques)),
            "indexes": {name: tuple(cols) for name, cols in indexes}, "foreign_keys": set(fks)}


def _normalise_type(type_text: str, mariadb: bool = False) -> str:
    text = " ".join(type_text.upper().split())
    if mariadb and text == "LONGTEXT":
        return "JSON"  # MariaDB's JSON is an alias of LONGTEXT with a json_valid() check
    return _INT_DISPLAY_WIDTH.sub(r"\1", text)  # SMALLINT(6) is SMALLINT: the width is display only


def describe_models(dialect: Dialect) -> Description:
    """What the SQLAlchemy models say the schema is, with types as `dialect` spells them."""
    tables = {}
    for table in Base.metadata.sorted_tables:
        columns = {c.name: (_normalise_type(c.type.compile(dialect=dialect)), c.nullable)
                   for c in table.columns}
        uniques = [tuple(c.name for c in con.columns) for con in table.constraints
                   if con.__class__.__name__ == "UniqueConstraint"]
        indexes = [(ix.name, [c.name for c in ix.columns]) for ix in table.indexes]
        fks = [(tuple(fk.parent.name for fk in con.elements), con.elements[0].column.table.name,
                tuple(fk.column.name for fk in con.elements)) for con in table.foreign_key_constraints]
        tables[table.name] = _table(columns, [c.name for c in table.primary_key.columns], uniques, indexes, fks)
    return tables


def describe_database(engine: Engine) -> Description:
    """What a live database holds, by reflection."""
    inspector = inspect(engine)
    tables = {}
    for name in Base.metadata.tables:
        columns = {c["name"]: (_normalise_type(c["type"].compile(dialect=engine.dialect),
                                               getattr(engine.dialect, "is_mariadb", False)),
                               c["nullable"]) for c in inspector.get_columns(name)}
        uniques = [tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)]
        indexes = [(ix["name"], ix["column_names"]) for ix in inspector.get_indexes(name)
                   if not ix.get("unique") and tuple(ix["column_names"]) not in uniques]
        fks = [(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
               for fk in inspector.get_foreign_keys(name)]
        tables[name] = _table(columns, inspector.get_pk_constraint(name)["constrained_columns"], uniques,
                              indexes, fks)
    return tables


def describe_mysql_ddl(sql: str) -> Description:
    """What the MySQL DDL text declares, parsed with sqlglot's MySQL dialect (no server needed)."""
    from ..schema import statements

    tables = {}
    for statement in statements(sql):
        create = sqlglot.parse_one(statement, read="mysql")
        assert isinstance(create, exp.Create), statement
        name = create.this.this.name
        columns, pk, uniques, indexes, fks = {}, [], [], [], []
        for item in create.this.expressions:
            if isinstance(item, exp.ColumnDef):
                not_null = any(isinstance(c.kind, exp.NotNullColumnConstraint) and not c.kind.args.get("allow_null")
                               for c in item.constraints)
                type_text = item.kind.sql(dialect="mysql")
                for c in item.constraints:
                    if isinstance(c.kind, exp.CharacterSetColumnConstraint):
                        type_text += f" CHARACTER SET {c.kind.this.name}"
                    elif isinstance(c.kind, exp.CollateColumnConstraint):
                        type_text += f" COLLATE {c.kind.this.name}"
                columns[item.name] = (_normalise_type(type_text), not not_null)
            elif isinstance(item, exp.PrimaryKey):
                pk = [e.name for e in item.expressions]
            elif isinstance(item, exp.UniqueColumnConstraint):
                uniques.append(tuple(e.name for e in item.this.expressions))
            elif isinstance(item, exp.IndexColumnConstraint):
                indexes.append((item.this.name, [e.name for e in item.expressions]))
            elif isinstance(item, exp.Constraint):
                fk = item.find(exp.ForeignKey)
                ref = fk.args["reference"].this
                fks.append((tuple(e.name for e in fk.expressions), ref.this.name,
                            tuple(e.name for e in ref.expressions)))
            else:
                raise AssertionError(f"unexpected item in CREATE TABLE {name}: {item.sql('mysql')}")
        tables[name] = _table(columns, pk, uniques, indexes, fks)
    return tables
