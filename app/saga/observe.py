"""What the orchestrator tells about itself: a ``process <subject>`` CONSUMER span per fact (a child of
the fact's producer, so the whole saga is one trace), its decisions as span attributes, a failed or
timed-out step as ERROR status, and the metrics ``eda.saga.outcomes{outcome}``,
and ``eda.saga.step.duration{step,status}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from opentelemetry import trace

from app.domain.saga import Saga, SagaState, StepStatus
from app.telemetry import consumer_span, mark_error, meter


class SagaTelemetry:
    """The orchestrator's spans and instruments (one per runner)."""

    def __init__(self) -> None:
        m = meter()
        self._outcomes = m.create_counter(
            "eda.saga.outcomes",
            unit="{saga}",
            description="Sagas finished, by outcome",
        )
        self._steps = m.create_histogram(
            "eda.saga.step.duration", unit="s", description="Saga step duration, start to finish, by status"
        )

    @staticmethod
    @contextlib.contextmanager
    def processing(msg: Msg, order_id: int, *, message_id: str, fact: str) -> Iterator[trace.Span]:
        """The span of one reaction; ``traceparent``/``tracestate`` come from the message headers."""
        headers = msg.headers or {}
        with consumer_span(
            msg.subject,
            traceparent=headers.get("traceparent"),
            tracestate=headers.get("tracestate"),
            message_id=message_id,
            order_id=order_id,
            attributes={"eda.saga.fact": fact},
        ) as span:
            yield span

    def reacted(self, before: SagaState, events: Sequence[Any], after: SagaState) -> None:
        """Record the decision (``events``: the saga's changes, stored or said by the order's events) on
        the current span and the metrics it implies (an outcome: ``after`` ended where ``before`` ran)."""
        span = trace.get_current_span()
        changes = list(_changes(events))
        span.set_attribute("eda.saga.decision", [kind for kind, _, _ in changes])
        for kind, change, at in changes:
            if kind == "step_finished":
                step = before.step(change.step) if isinstance(before, Saga) else None
                status = str(change.status)
                if step is not None:
                    seconds = max(0.0, (at - step.started_at).total_seconds())
                    self._steps.record(seconds, {"step": str(change.step), "status": status})
                if status != StepStatus.SUCCEEDED:
                    mark_error(span, f"{change.step} {status}: {change.outcome}")
            elif kind == "compensation_started":
                span.add_event("compensation started", {"reason": change.reason})
        if isinstance(after, Saga) and after.terminal and not (isinstance(before, Saga) and before.terminal):
            self._outcomes.add(1, {"outcome": after.status.value})


_KINDS = {
    "StepStarted": "step_started",
    "StepFinished": "step_finished",
    "CompensationStarted": "compensation_started",
    "SagaCompleted": "completed",
    "SagaCancelled": "cancelled",
    "SagaStarted": "started",
}


def _changes(events: Sequence[Any]) -> Iterator[tuple[str, Any, datetime]]:
    """(kind, change, at) of every change the reaction recorded: a stored event may carry several
    (``changes``, each with a ``kind``) or be one change itself."""
    for event in events:
        at: datetime = event.at
        nested = getattr(event, "changes", None)
        if nested is None:
            yield _KINDS.get(type(event).__name__, type(event).__name__), event, at
        else:
            if type(event).__name__ == "SagaStarted":
                yield "started", event, at
            for change in nested:
                yield str(change.kind), change, at
