"""The API's HTTP metrics: requests by method, route template and status, and their duration; probes
and scrapes are not counted (a 503 from /readyz must not page anyone as an API error)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from e2e.conftest import System
from e2e.helpers import SEED


async def _samples(system: System) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await system.client.get("/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("eda_http_")
    }


def _requests(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == "eda_http_requests_total" and want <= set(ls))


async def test_requests_counted_by_route_template_and_status(system: System) -> None:
    created = await system.client.post("/api/v1/orders", json=SEED)
    assert created.status_code == 201
    order_id = created.json()["order_id"]
    assert (await system.client.get(f"/api/v1/orders/{order_id}")).status_code in (200, 404)
    assert (await system.client.get("/api/v1/orders/987654")).status_code == 404
    assert (await system.client.post("/api/v1/orders", json={"user_id": "x"})).status_code == 422
    assert (await system.client.get("/no/such/path")).status_code == 404
    await system.client.get("/readyz")
    await system.client.get("/livez")
    samples = await _samples(system)
    assert _requests(samples, method="POST", route="/api/v1/orders", status="201") == 1
    assert _requests(samples, method="POST", route="/api/v1/orders", status="422") == 1
    assert _requests(samples, method="GET", route="/api/v1/orders/{order_id}") == 2
    assert _requests(samples, method="GET", route="/api/v1/orders/{order_id}", status="404") >= 1
    assert _requests(samples, route="unmatched", status="404") == 1
    assert not [k for k in samples if ("route", "/readyz") in k[1] or ("route", "/livez") in k[1]]
    count = samples[
        ("eda_http_request_duration_seconds_count", (("method", "POST"), ("route", "/api/v1/orders")))
    ]
    assert count == 2
