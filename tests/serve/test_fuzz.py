"""Fuzz the live service with schemathesis from its own OpenAPI spec: never a 5xx."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.helpers.serve import LiveServer, wait_ready

from oiforge.serve.app import create_app
from oiforge.serve.holder import ServeConfig

CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(exported: Path) -> None:
    # URL inputs off: generated hosts must never be resolved (tests talk to 127.0.0.1 only)
    config = ServeConfig(max_upload_bytes=1_000_000, max_images=4, url_inputs=False)
    with LiveServer(create_app(exported, config, api_key="")) as server:
        wait_ready(server.url)
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        seen: Counter[tuple[str, int]] = Counter()
        assert {op.path for op in operations} >= {"/v1/predict", "/v1/model", "/readyz"}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation.as_strategy(generation_mode=mode), server.url, seen)
                except Unsatisfiable:
                    # an operation without parameters or body has no invalid inputs
                    assert mode is GenerationMode.NEGATIVE, operation.path
        predict_statuses = {status for (path, status) in seen if path == "/v1/predict"}
        assert len(predict_statuses) >= 3, seen  # the fuzzer reached several error paths
        assert all(status < 500 for (_, status) in seen), seen


def _fuzz(strategy: Any, base_url: str, seen: Counter[tuple[str, int]]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=30)
        seen[(case.operation.path, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    run()
