"""Prometheus metrics of the API process, in a registry of its own (one per app instance); ``/metrics``
serves it together with the process-wide default registry (OpenTelemetry metrics bridged by
``app.telemetry``: events appended, append latency; in ``eda dev`` also the projector, saga, workers)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from app.api.httpmetrics import HttpMetrics


class ApiMetrics:
    """Commands by type/outcome, command latency, projection lag, read fallbacks, load-limit rejections,
    console streams, idempotent replays, HTTP requests (``app.api.httpmetrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.commands = Counter(
            "eda_commands_total", "Commands handled", ["command", "outcome"], registry=self.registry
        )
        self.command_seconds = Histogram(
            "eda_command_seconds",
            "Command latency: load, decide, append (seconds)",
            ["command"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "eda_projection_lag_events",
            "Order events not yet applied to the read model",
            ["projection"],
            registry=self.registry,
        )
        self.read_fallbacks = Counter(
            "eda_read_fallbacks_total",
            "Order reads answered from the event store instead of the read model",
            ["reason"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "eda_http_rejections_total",
            "Requests refused by a load limit: rate_limited (429), overloaded (503: connections), "
            "db_pool (503: no database connection free), streams (503: console streams)",
            ["reason"],
            registry=self.registry,
        )
        self.ui_streams = Gauge(
            "eda_ui_streams", "Console live-feed (SSE) streams open in this process", registry=self.registry
        )
        self.idempotent_replays = Counter(
            "eda_idempotent_replays_total",
            "Responses replayed for a repeated Idempotency-Key",
            registry=self.registry,
        )

    def collect(self) -> Iterable[Metric]:
        """This app's metrics, then the default registry's (a name already served is skipped)."""
        seen: set[str] = set()
        for registry in (self.registry, REGISTRY):
            for family in registry.collect():
                if family.name not in seen:
                    seen.add(family.name)
                    yield family
