"""Property-based API testing with schemathesis over the OpenAPI schema of a live ``eda api`` process
(plus ``eda projector``, the session's ``live_api``), authenticated with a token of the real provider
holding every scope: generated requests, valid and invalid, never get a 5xx, and every response
conforms to the documented schema, status codes and content types. Bounded: ~25 examples/operation.
Unauthenticated and garbage-``Authorization`` runs are in test_auth.py."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from idp_support import Tokens
from schemathesis import checks
from schemathesis.config import InferenceAlgorithm

from e2e.conftest import LiveApi


@pytest.fixture(scope="module")
def auth(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.admin()}"}


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    base_url: str,
    headers: dict[str, str],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=10)

    run()


def test_api_never_fails_with_5xx(live_api: LiveApi, auth: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json", headers=auth)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if mode is schemathesis.GenerationMode.NEGATIVE and not (
                list(operation.iter_parameters()) or list(operation.body)
            ):
                continue  # nothing to make invalid
            try:
                _fuzz(operation, mode, live_api.url, auth)
            except BaseException as exc:  # hypothesis raises exception groups
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)


def _acceptable_order(body: dict[str, object]) -> dict[str, object]:
    """The generated create body made into one the server accepts, so that the links get followed:
    the server prices orders with items (a generated ``amount`` matches by chance only), the admin token
    has no customer number (``user_id`` is required), and JSON Schema's integers include ``7.0`` which
    the API's strict integers refuse (test_api_never_fails_with_5xx sends those, and gets 422s)."""
    items = body.get("items")
    fixed = dict(body)
    if isinstance(items, list) and items:
        fixed.pop("amount", None)
        fixed["items"] = [
            {k: int(v) if isinstance(v, float) else v for k, v in item.items()}
            if isinstance(item, dict)
            else item
            for item in items
        ]
    user_id = body.get("user_id")
    fixed["user_id"] = int(user_id) if isinstance(user_id, int | float) else 123
    return fixed


def test_stateful_links_never_fail_with_5xx_or_break_the_schema(
    live_api: LiveApi, auth: dict[str, str]
) -> None:
    """Schemathesis' stateful run: sequences of calls that follow the OpenAPI links of a created order
    (get with ``min_version``, events, saga, cancel with ``If-Match`` = its ETag). Every response: no
    5xx, documented status code and content type, body valid against the schema. Bounded (~1 min).
    The list endpoint is fuzzed by ``test_api_never_fails_with_5xx``, not followed here (see below)."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json", headers=auth)
    # Only the documented links (and Location headers), not links inferred from the list endpoint:
    # those draw from GET /api/v1/orders' live, ever-growing page, so two runs with the same choices
    # could draw differently and hypothesis failed the run as a FlakyStrategyDefinition (seen once in
    # CI; nothing to do with the API's behaviour).
    schema.config.phases.stateful.inference.algorithms = [InferenceAlgorithm.LOCATION_HEADERS]
    # Valid calls only, with the admin token: generated security parameters replaced the token (a fifth
    # of the creates were 401s) and negative bodies are test_api_never_fails_with_5xx's job. Without
    # this a CI run made 7 orders in 919 calls and followed no link at all.
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE], with_security_parameters=False
    )
    created = schema["/api/v1/orders"]["POST"].definition.raw["responses"]["201"]
    assert set(created["links"]) == {"GetOrder", "GetOrderEvents", "GetOrderSaga", "CancelOrder"}
    calls: Counter[tuple[str, int]] = Counter()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            if case.operation.label == "POST /api/v1/orders" and isinstance(case.body, dict):
                case.body = _acceptable_order(case.body)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"base_url": live_api.url, "timeout": 10, "headers": auth}

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
