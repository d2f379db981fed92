"""The API fuzzed against its own OpenAPI document (schemathesis): a worker with a tokens file, on the
embedded broker, answers every generated request, valid or not, without a 5xx, with JSON errors,
and as the document says (status codes, bodies, content types, which requests need a token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.schemas import BaseSchema

from runherald.auth import hash_token, new_token
from runherald.broker import EmbeddedBroker
from runherald.openapi import OPENAPI

from .harness import WorkerProcess, fast_worker, unique

TOKEN = new_token()
EXAMPLES = 30  # per operation: keeps the whole fuzz well under a minute on a small machine


@pytest.fixture(scope="module")
def fuzzed(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    path = tmp_path_factory.mktemp("fuzz") / "tokens.yaml"
    path.write_text(f'tokens: [{{name: fuzz, sha256: "{hash_token(TOKEN)}", scopes: [admin]}}]\n')
    process = fast_worker(
        broker.url, unique("t") + ".", unique("g"), worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)
    ).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


OPERATIONS = [
    (path, method.upper())
    for path, item in OPENAPI["paths"].items()
    for method in item
    if method != "parameters"
]


@pytest.fixture(scope="module")
def served_schema(fuzzed: WorkerProcess) -> BaseSchema:
    """The document as the worker serves it (so what is fuzzed is what clients read)."""
    return schemathesis.openapi.from_url(fuzzed.api + "/api/v1/openapi.json")


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_api_keeps_to_its_openapi_document(
    fuzzed: WorkerProcess, served_schema: BaseSchema, path: str, method: str, mode: GenerationMode
) -> None:
    operation = served_schema[path][method]
    if mode is GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters):
        pytest.skip("nothing to make invalid")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case: Case) -> None:
        response = case.call(base_url=fuzzed.api, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
        if response.status_code >= 400:
            assert response.headers["content-type"] == ["application/json"], response.headers
            assert isinstance(response.json()["error"], str)
        if mode is GenerationMode.POSITIVE:
            case.validate_response(response)

    answers_as_documented()
