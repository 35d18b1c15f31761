"""The database a running service uses holds exactly the schema the models describe."""
from __future__ import annotations

import pytest

from common.testing.schema_check import describe_database, describe_models


@pytest.mark.check("S0-AC5")
def test_the_live_database_the_service_uses_has_the_models_schema(service, database):
    assert describe_database(database.engine) == describe_models(database.engine.dialect)
