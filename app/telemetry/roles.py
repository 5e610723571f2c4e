"""Several roles in one process (``eda dev``), each reporting under its own ``service.name``
(``eda-api``, ``eda-projector``, ``eda-saga``, ``eda-worker-payment``, ...) as if it ran alone.

OpenTelemetry allows several providers with different Resources in one process. ``in_role(name, work)``
runs ``work`` with a context variable naming the role; tasks it starts inherit it. In per-role mode
(``configure_telemetry(..., per_role=True)``) the global tracer provider is a ``RoleRouter``: its tracers
start each span with the TracerProvider of the role running the current task, so our spans and those
of the instrumentations (FastAPI, asyncpg) land under the role's Resource. Meters are the role's when an
instrument is created (``app.telemetry.meter()``), so instruments made inside a role belong to it.

``/metrics``: each role's Prometheus bridge writes to a registry of its own and labels its series with
``service_name``; one collector in the default registry merges them by metric name (several roles'
``eda_events_appended_total`` are one family with one series per role — Prometheus rejects a family
that appears twice). Outside a role, or when per-role mode is off, the process's providers serve.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, override

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import TracerProvider

_role: contextvars.ContextVar[str | None] = contextvars.ContextVar("eda_role", default=None)
_per_role: PerRole | None = None


@dataclass(frozen=True, slots=True)
class RoleProviders:
    """One role's providers and the registry its Prometheus bridge writes to."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry


async def in_role[T](role: str, work: Awaitable[T]) -> T:
    """Await ``work`` as role ``role`` (e.g. ``"saga"``, reported as ``eda-saga`` in per-role mode)."""
    token = _role.set(role)
    try:
        return await work
    finally:
        _role.reset(token)


def current() -> RoleProviders | None:
    """The providers of the role running the current task; ``None`` outside per-role mode or a role."""
    role = _role.get()
    if role is None or _per_role is None:
        return None
    return _per_role.providers(role)


def install(per_role: PerRole) -> None:
    global _per_role  # noqa: PLW0603 - the process's providers are global by OpenTelemetry's design
    _per_role = per_role


def labelled_reader() -> tuple[MetricReader | None, CollectorRegistry]:
    """A Prometheus bridge into a fresh registry whose series carry the ``service_name`` label."""
    registry = CollectorRegistry(auto_describe=True)
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
    except ImportError:  # pragma: no cover - a dependency; kept optional for slim images
        return None, registry
    reader = PrometheusMetricReader(
        registry=registry, resource_attribute_filter=lambda key: key == "service.name"
    )
    return reader, registry


class MergedRegistries:
    """A prometheus_client collector yielding the families of several registries, merged by name."""

    def __init__(self) -> None:
        self.registries: list[CollectorRegistry] = []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for registry in list(self.registries):
            for family in registry.collect():
                known = families.get(family.name)
                if known is None:
                    families[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from families.values()


class PerRole:
    """The providers of every role seen so far (made on first use) and the router in front of them."""

    def __init__(self, make: Callable[[str], RoleProviders], process: TracerProvider) -> None:
        self._make = make
        self._roles: dict[str, RoleProviders] = {}
        self.merged = MergedRegistries()
        REGISTRY.register(self.merged)
        self.router = RoleRouter(process)

    def providers(self, role: str) -> RoleProviders:
        found = self._roles.get(role)
        if found is None:
            found = self._roles[role] = self._make(f"eda-{role}")
            self.merged.registries.append(found.registry)
        return found

    def process_reader(self) -> MetricReader | None:
        """The process's own Prometheus bridge, merged like a role's (labelled with its service)."""
        reader, registry = labelled_reader()
        self.merged.registries.append(registry)
        return reader

    def shutdown(self) -> None:
        for providers in self._roles.values():
            providers.tracer_provider.shutdown()
            providers.meter_provider.shutdown()


class RoleRouter(trace.TracerProvider):
    """The global tracer provider in per-role mode: tracers that follow the current role."""

    def __init__(self, process: TracerProvider) -> None:
        self._process = process

    def current(self) -> trace.TracerProvider:
        role = current()
        return role.tracer_provider if role is not None else self._process

    @override
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _RoutingTracer(self, (instrumenting_module_name, instrumenting_library_version, schema_url))


class _RoutingTracer(trace.Tracer):
    """Starts each span with the tracer of the current role's provider (cached per provider)."""

    def __init__(self, router: RoleRouter, args: tuple[str, str | None, str | None]) -> None:
        self._router = router
        self._args = args
        self._tracers: dict[int, trace.Tracer] = {}

    def _target(self) -> trace.Tracer:
        provider = self._router.current()
        found = self._tracers.get(id(provider))
        if found is None:
            name, version, schema_url = self._args
            found = self._tracers[id(provider)] = provider.get_tracer(name, version, schema_url)
        return found

    @override
    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._target().start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @override
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._target().start_as_current_span(name, *args, **kwargs)
