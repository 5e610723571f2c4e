"""What the operator tells about itself: one span per reconcile of a custom resource —
``reconcile ProjectionRebuild <namespace>/<name>``, ``reconcile Snapshot ...`` or ``reconcile Backup ...``
(INTERNAL, attributes ``k8s.namespace.name``, ``k8s.object.name``, ``eda.reconcile.outcome``) — whose
children are the engine's spans (``rebuild <projection>`` and its batches, ``snapshot <aggregate>``,
``backup`` and its parts), so a run is one trace from
the operator's decision down to PostgreSQL; and the metrics ``eda_operator_reconciles_total{kind,outcome}``
(outcome: succeeded, failed, retrying, cancelled, invalid, error) and
``eda_operator_reconcile_duration_seconds{kind}``, served on ``/metrics`` of the operator's
``EDA_HEALTH_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from app.readmodel.runs import RunSource
from app.telemetry import mark_error, meter, tracer

OUTCOMES = {
    "Succeeded": "succeeded",
    "Scheduled": "succeeded",
    "Failed": "failed",
    "Pending": "retrying",
    "Cancelled": "cancelled",
}


@functools.cache
def _instruments() -> tuple[Any, Any]:
    """Created on first use (nothing at import time), once per process."""
    m = meter()
    return (
        m.create_counter(
            "eda.operator.reconciles", unit="{reconcile}", description="Reconciles by kind and outcome"
        ),
        m.create_histogram(
            "eda.operator.reconcile.duration", unit="s", description="Reconcile duration (the whole run)"
        ),
    )


@dataclass
class Reconcile:
    """The reconcile in progress; set ``outcome`` (or ``from_phase``) before the block ends."""

    span: trace.Span
    outcome: str = "error"

    def from_phase(self, phase: str | None) -> None:
        self.outcome = OUTCOMES.get(phase or "", "error")


@contextlib.contextmanager
def reconciling(kind: str, source: RunSource | None) -> Iterator[Reconcile]:
    """Span and metrics around one reconcile of a ``kind`` object (exceptions propagate)."""
    namespace = (source.namespace if source else None) or ""
    name = (source.name if source else None) or ""
    attributes = {"k8s.namespace.name": namespace, "k8s.object.name": name, "eda.reconcile.kind": kind}
    counter, seconds = _instruments()
    started = time.perf_counter()
    with tracer().start_as_current_span(
        f"reconcile {kind} {namespace}/{name}", attributes=attributes, record_exception=False
    ) as span:
        current = Reconcile(span)
        try:
            yield current
        except asyncio.CancelledError:
            current.outcome = "cancelled"
            raise
        except Exception as exc:
            current.outcome = "error"
            mark_error(span, exc)
            raise
        finally:
            span.set_attribute("eda.reconcile.outcome", current.outcome)
            if current.outcome in ("failed", "error", "invalid"):
                span.set_status(trace.StatusCode.ERROR, current.outcome)
            counter.add(1, {"kind": kind, "outcome": current.outcome})
            seconds.record(time.perf_counter() - started, {"kind": kind})
