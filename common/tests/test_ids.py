import time
import uuid

from sqlalchemy import Column, MetaData, Table, create_engine, select, text

from common.ids import BinaryUUID, parse_uuid, uuid7, uuid7_time_ms


def test_uuid7_has_version_7_and_the_rfc_variant():
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_embeds_the_current_unix_milliseconds():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(value) <= after + 1


def test_uuid7_is_strictly_increasing_even_within_one_millisecond():
    values = [uuid7() for _ in range(20_000)]
    assert all(a.bytes < b.bytes for a, b in zip(values, values[1:]))


def test_parse_uuid_takes_only_the_canonical_form():
    value = uuid7()
    assert parse_uuid(str(value)) == value
    assert parse_uuid(str(value).upper()) == value
    for bad in ("", "nope", str(value).replace("-", ""), "{" + str(value) + "}", str(value) + " ", None, 42):
        assert parse_uuid(bad) is None


def test_binary_uuid_stores_sixteen_raw_bytes():
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("id", BinaryUUID(), primary_key=True))
    table.create(engine)
    value = uuid7()
    with engine.begin() as conn:
        conn.execute(table.insert(), {"id": value})
        raw = conn.execute(text("SELECT id, length(id), typeof(id) FROM t")).one()
        assert (bytes(raw[0]), raw[1], raw[2]) == (value.bytes, 16, "blob")
        assert conn.execute(select(table.c.id)).scalar_one() == value
