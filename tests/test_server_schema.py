"""Schemathesis fuzzes every route from the service's own OpenAPI schema: no 5xx, and every
answer matches the schema (status code, content type, body). Few examples per route: CI time."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_helpers import indexed_folder

from mmsearch.config import Settings
from mmsearch.server import ServiceConfig, make_app


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    index, media = indexed_folder(tmp_path_factory.mktemp("schema"))
    app = make_app(index, settings=Settings(), config=ServiceConfig(folders=(str(media),), max_k=50))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_answers_within_its_schema(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def check(case) -> None:
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            case.validate_response(
                response,
                checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            )

        try:
            check()
        except Unsatisfiable:  # a route without parameters cannot be sent invalid input
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters \
                and not len(operation.body) and not operation.query
