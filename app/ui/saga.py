"""The saga as the console draws it: the step timeline of the order's events and the saga's records.

Both streams are folded into the saga's view (``app.service.sagaview``), exactly like
``GET /api/v1/orders/{id}/saga``, so the console can never drift from the saga's event format. One entry
per step: start, end, status and outcome, attempts (a retry or a timed-out attempt shows as > 1), and
whether it is a compensation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.saga import Saga
from app.eventstore.envelope import RecordedEvent
from app.service.sagaview import EMPTY, fold_recorded, merged


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def saga_timeline(records: list[RecordedEvent], orders: list[RecordedEvent]) -> dict[str, Any] | None:
    """The saga's status, reason and steps in the order they started (``None``: no saga yet)."""
    saga = fold_recorded(EMPTY, merged(records, orders)).saga
    if not isinstance(saga, Saga):
        return None
    steps = sorted(saga.steps, key=lambda s: (s.started_at, s.compensation))
    return {
        "status": saga.status.value,
        "reason": saga.reason,
        "started_at": _iso(saga.started_at),
        "updated_at": _iso(saga.updated_at),
        "steps": [
            {
                "name": s.name.value,
                "status": s.status.value,
                "outcome": s.outcome,
                "started_at": _iso(s.started_at),
                "finished_at": _iso(s.finished_at),
                "attempts": s.attempt,
                "compensation": s.compensation,
            }
            for s in steps
        ],
    }
