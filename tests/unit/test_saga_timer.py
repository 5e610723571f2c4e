"""The pure part of the saga's single timer: which running steps a firing times out, when it must fire
next, how a fired subject is read (also the per-step timers of earlier versions), and the deadline
format of the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.domain.saga import Saga, SagaStatus, Step, StepName, StepStatus, StepTimedOut
from app.saga.fulfilment import next_deadline, overdue, react_to_timeout, timeout_subject
from app.saga.timeouts import deadline

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def _saga(*steps: Step) -> Saga:
    return Saga(
        order_id=7,
        user_id=1,
        items=(),
        amount=Decimal("1.00"),
        status=SagaStatus.RUNNING,
        started_at=T0,
        updated_at=T0,
        steps=steps,
    )


def _step(
    name: StepName, started_s: float, status: StepStatus = StepStatus.RUNNING, attempt: int = 1
) -> Step:
    return Step(
        name=name,
        status=status,
        attempt=attempt,
        command_id=f"7:{name.value}:{attempt}",
        started_at=T0 + timedelta(seconds=started_s),
    )


def test_only_running_steps_past_their_own_deadline_time_out() -> None:
    saga = _saga(
        _step(StepName.CHARGE, 0, StepStatus.SUCCEEDED),
        _step(StepName.SHIP, 1.5),
        _step(StepName.REFUND, 5, attempt=2),
    )
    assert overdue(saga, 10, T0 + timedelta(seconds=11)) == []  # the charge finished; ship due at 11.5
    due = overdue(saga, 10, T0 + timedelta(seconds=12))
    assert [r.fact for r in due] == [StepTimedOut(order_id=7, step=StepName.SHIP, attempt=1)]
    assert due[0].trigger_id == "timeout:7:ship_order:1"  # the same trigger as a per-step timer's
    late = overdue(saga, 10, T0 + timedelta(seconds=16))
    assert [(r.fact.step, r.fact.attempt) for r in late] == [(StepName.SHIP, 1), (StepName.REFUND, 2)]  # type: ignore[attr-defined]


def test_the_timer_fires_next_at_the_earliest_running_deadline_never_in_the_past() -> None:
    saga = _saga(_step(StepName.CHARGE, 0, StepStatus.SUCCEEDED), _step(StepName.SHIP, 1.5))
    assert next_deadline(saga, 10, T0 + timedelta(seconds=2)) == T0 + timedelta(seconds=11.5)
    # a runner clock behind the server's: the deadline "passed" by the server, not yet here
    assert next_deadline(saga, 10, T0 + timedelta(seconds=11.4)) == T0 + timedelta(seconds=12.4)
    assert next_deadline(_saga(_step(StepName.CHARGE, 0, StepStatus.SUCCEEDED)), 10, T0) is None


def test_fired_subjects() -> None:
    assert timeout_subject(7) == "timeouts.saga.7.due"
    assert react_to_timeout("timeouts.saga.7.due", T0) is None  # the saga's timer: overdue() decides
    old = react_to_timeout("timeouts.saga.7.charge_payment.2", T0)  # armed by an earlier version
    assert old is not None
    assert old.fact == StepTimedOut(order_id=7, step=StepName.CHARGE, attempt=2)
    assert old.trigger_id == "timeout:7:charge_payment:2"


def test_deadlines_are_whole_seconds_rounded_up() -> None:
    assert deadline(T0) == "2026-11-27T12:00:00Z"
    assert deadline(T0 + timedelta(microseconds=1)) == "2026-11-27T12:00:01Z"
    assert deadline(T0 + timedelta(seconds=59.5)) == "2026-11-27T12:01:00Z"
