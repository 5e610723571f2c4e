"""The saga as the console draws it: a step timeline folded from the stored events of
``events.saga.<order_id>`` (wire names and fields, so any build of the saga can be shown).

One entry per step: first start, latest end, latest status and outcome, number of attempts (a retry or
a timed-out attempt shows up as attempts > 1), and whether it is a compensation. The saga's own status
follows ``SagaStarted`` → ``SagaCompensationStarted`` → ``SagaCompleted``/``SagaCancelled``.
"""

from __future__ import annotations

from typing import Any

from app.domain.saga.events import COMPENSATIONS
from app.eventstore.envelope import RecordedEvent

_COMPENSATION_NAMES = frozenset(str(s) for s in COMPENSATIONS)


def _step(steps: dict[str, dict[str, Any]], name: str, at: str) -> dict[str, Any]:
    if name not in steps:
        steps[name] = {
            "name": name,
            "status": "running",
            "outcome": None,
            "started_at": at,
            "finished_at": None,
            "attempts": 0,
            "compensation": name in _COMPENSATION_NAMES,
        }
    return steps[name]


def saga_timeline(events: list[RecordedEvent]) -> dict[str, Any] | None:
    """The saga's status, reason and steps in the order they first started (``None``: no saga yet)."""
    if not events:
        return None
    status, reason, started, updated = "running", None, None, None
    steps: dict[str, dict[str, Any]] = {}
    for recorded in events:
        env = recorded.envelope
        data = env.data
        at = env.occurred_at.isoformat()
        updated = at
        match env.type:
            case "SagaStarted":
                started = at
            case "SagaStepStarted":
                step = _step(steps, str(data.get("step")), at)
                step["attempts"] = max(int(data.get("attempt") or 1), step["attempts"] + 1)
                step.update(status="running", finished_at=None, outcome=None)
            case "SagaStepFinished":
                step = _step(steps, str(data.get("step")), at)
                step.update(status=str(data.get("status")), outcome=data.get("outcome"), finished_at=at)
            case "SagaCompensationStarted":
                status, reason = "compensating", data.get("reason")
            case "SagaCompleted":
                status = "completed"
            case "SagaCancelled":
                status, reason = "cancelled", data.get("reason") or reason
            case _:
                pass
    return {
        "status": status,
        "reason": reason,
        "started_at": started,
        "updated_at": updated,
        "steps": list(steps.values()),
    }
