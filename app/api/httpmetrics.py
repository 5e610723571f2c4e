"""HTTP server metrics of the API: ``eda_http_requests_total{method,route,status}`` and
``eda_http_request_duration_seconds{method,route}`` (the route template, e.g. ``/api/v1/orders/{order_id}``,
so cardinality stays bounded; unmatched paths count as ``route="unmatched"``).

A pure ASGI middleware on prometheus_client (~2 µs per request), not opentelemetry-instrumentation's HTTP
histograms, which cost more per request than a span (see ``app.telemetry.instrument``). Probes and
scrapes (``/livez``, ``/readyz``, ``/metrics``) are not counted: a 503 from ``/readyz`` is a state, not
an error of a request, and the API 5xx alert must not fire on it.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOT_COUNTED = frozenset({"/livez", "/readyz", "/metrics"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The two instruments, registered in the API's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "eda_http_requests_total",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "eda_http_request_duration_seconds",
            "HTTP request duration until the response is complete (seconds)",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )


class RecordHttpMetrics:
    """Pure ASGI middleware recording every HTTP request in ``HttpMetrics``."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NOT_COUNTED:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as a 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # set by the router
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.seconds.labels(method, route).observe(time.perf_counter() - started)
