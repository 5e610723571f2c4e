"""Property-based API testing with schemathesis over the OpenAPI schema of a live ``eda api`` process
(plus ``eda projector``): generated requests, valid and invalid, never get a 5xx, and every response
conforms to the documented schema, status codes and content types. Bounded: ~25 examples/operation."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.config import InferenceAlgorithm

from app.dev.stack import free_port
from e2e.conftest import EDA

SCHEMA = "rm_schemathesis"


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def live_api(nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_DATABASE_URL": database_url,
        "EDA_READMODEL_SCHEMA": SCHEMA,
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        "EDA_MIN_VERSION_WAIT_S": "0.2",
    }
    log = Path(tmp_path_factory.mktemp("schemathesis")) / "roles.log"
    procs = []
    with log.open("ab") as out:
        for args in (["api", "--host", "127.0.0.1", "--port", str(port)], ["projector"]):
            procs.append(subprocess.Popen([EDA, *args], env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, base_url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    run()


def test_api_never_fails_with_5xx(live_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if mode is schemathesis.GenerationMode.NEGATIVE and not (
                list(operation.iter_parameters()) or list(operation.body)
            ):
                continue  # nothing to make invalid
            try:
                _fuzz(operation, mode, live_api)
            except BaseException as exc:  # hypothesis raises exception groups
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)


def test_stateful_links_never_fail_with_5xx_or_break_the_schema(live_api: str) -> None:
    """Schemathesis' stateful run: sequences of calls that follow the OpenAPI links of a created order
    (get with ``min_version``, events, saga, cancel with ``If-Match`` = its ETag). Every response: no
    5xx, documented status code and content type, body valid against the schema. Bounded (~1 min).
    The list endpoint is fuzzed by ``test_api_never_fails_with_5xx``, not followed here (see below)."""
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    # Only the documented links (and Location headers), not links inferred from the list endpoint:
    # those draw from GET /api/v1/orders' live, ever-growing page, so two runs with the same choices
    # could draw differently and hypothesis failed the run as a FlakyStrategyDefinition (seen once in
    # CI; nothing to do with the API's behaviour).
    schema.config.phases.stateful.inference.algorithms = [InferenceAlgorithm.LOCATION_HEADERS]
    created = schema["/api/v1/orders"]["POST"].definition.raw["responses"]["201"]
    assert set(created["links"]) == {"GetOrder", "GetOrderEvents", "GetOrderSaga", "CancelOrder"}
    calls: Counter[tuple[str, int]] = Counter()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"base_url": live_api, "timeout": 10}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            calls[(f"{case.method} {case.path}", response.status_code)] += 1

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: object = None,
            **kwargs: object,
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    started = time.monotonic()
    Workflow.run(
        settings=settings(
            max_examples=150,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    elapsed = time.monotonic() - started
    print(f"\nstateful run: {sum(calls.values())} calls in {elapsed:.1f}s: {dict(sorted(calls.items()))}")
    linked = {op for (op, status) in calls if status < 300}
    assert "POST /api/v1/orders" in linked
    assert linked & {"POST /api/v1/orders/{order_id}/cancel", "GET /api/v1/orders/{order_id}"}, calls
    assert not [c for c in calls if c[1] >= 500]
