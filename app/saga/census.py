"""Which sagas are in flight and which run past their timeout, read from the durable timer index and
the orchestrator's unacknowledged triggers.

The orchestrator keeps an invariant (``app.saga.holding``, ``app.saga.timeouts``): while a saga has a
running step, either its latest trigger is held unacknowledged on the ``saga-orchestrator`` consumer
(for at most ~2 s: most sagas finish in that time and never store a timer), or its timer is armed —
a schedule on ``sched.saga.<order>.timer`` in stream ``SAGA_TIMERS`` due no later than that step's
deadline — or has just fired: the server published ``timeouts.saga.<order>.due`` and the durable
consumer ``saga-timeouts`` has not acknowledged it yet. So the timers name every saga whose step runs
longer than the hold, the consumer's ack-pending count says how many younger ones there are (``held``:
a count, the server does not list them cheaply), and two states mean a saga runs longer than its
timeout allows:

- an armed timer whose time passed ``grace`` ago (the server did not fire it);
- a fired timer not handled within ``grace`` (the orchestrator is down, stuck or failing on it).

Both are read with "next message on subject" gets (``Nats-Schedule: @at <time>`` gives an armed
timer's due time, the message time a fired one's), read-only: no consumer is created. A fired timer
acknowledged out of order beyond the consumer's ack floor still counts as unhandled for the moment it
takes the floor to pass it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from app.eventstore.jetstream import STREAM as EVENTS_STREAM
from app.saga.timeouts import TIMEOUTS_CONSUMER, TIMERS_STREAM

ORCHESTRATOR_CONSUMER = "saga-orchestrator"  # app.saga.runner's durable (which imports this module)

GRACE_S = 30.0
MAX_TIMERS = 20_000  # per scan: beyond that the census undercounts rather than taking minutes
_SCHEDULE = "Nats-Schedule"
type Scanned = list[tuple[str, datetime, str | None]]  # (subject, message time, Nats-Schedule header)


@dataclass(frozen=True, slots=True)
class Timer:
    """A saga's timer: ``due`` is when it fires (armed) or fired (``fired``)."""

    order_id: int
    due: datetime
    fired: bool


@dataclass(frozen=True, slots=True)
class Census:
    timers: tuple[Timer, ...]
    taken_at: datetime
    held: int = 0
    """Triggers the orchestrator holds (young sagas with a running step; reactions in progress)."""

    def in_flight(self) -> frozenset[int]:
        """The orders whose saga has had a running step for longer than the hold (a timer)."""
        return frozenset(t.order_id for t in self.timers)

    def in_flight_count(self) -> int:
        """Sagas with a running step: those with a timer and those whose trigger is held."""
        return len(self.in_flight()) + self.held

    def overdue(self, grace_s: float = GRACE_S) -> list[Timer]:
        """The timers that should have been handled more than ``grace_s`` ago, oldest first."""
        late = [t for t in self.timers if (self.taken_at - t.due).total_seconds() > grace_s]
        return sorted(late, key=lambda t: t.due)

    def overdue_seconds(self, grace_s: float = GRACE_S) -> float:
        """How long past due the most overdue timer is (0 when none is)."""
        late = self.overdue(grace_s)
        return (self.taken_at - late[0].due).total_seconds() if late else 0.0


def _order_id(subject: str) -> int | None:
    parts = subject.split(".")  # sched.saga.<order>.timer | timeouts.saga.<order>.due
    return int(parts[2]) if len(parts) >= 4 and parts[2].isdigit() else None


def _at(header: str | None) -> datetime | None:
    if not header or not header.startswith("@at "):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(header[4:].strip().replace("Z", "+00:00"))
    return None


async def _scan(js: JetStreamContext, subject: str, start: int) -> Scanned:
    """(subject, message time, Nats-Schedule header) of the messages on ``subject`` from sequence
    ``start``: read-only "next message on subject" gets, one per timer (sagas in flight are few; a
    role needs no right to create or delete consumers on the timer stream for this)."""
    out: Scanned = []
    seq = start
    while len(out) < MAX_TIMERS:
        try:
            msg = await js.get_msg(TIMERS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        sent = msg.time if isinstance(msg.time, datetime) else datetime.now(UTC)
        out.append((msg.subject or "", sent, (msg.headers or {}).get(_SCHEDULE)))
        seq = int(msg.seq or seq) + 1
    return out


async def take(js: JetStreamContext) -> Census:
    """Read the timer index now (an empty census when the saga has never run)."""
    now = datetime.now(UTC)
    try:
        floor = (await js.consumer_info(TIMERS_STREAM, TIMEOUTS_CONSUMER)).ack_floor
    except NotFoundError:
        return Census((), now)
    armed: dict[str, Timer] = {}
    for subject, sent, schedule in await _scan(js, "sched.saga.>", 1):
        order_id = _order_id(subject)
        if order_id is not None:  # one schedule per subject: a later one replaced an earlier one
            armed[subject] = Timer(order_id, _at(schedule) or sent, fired=False)
    start = (floor.stream_seq if floor else 0) + 1
    fired = [
        Timer(order_id, sent, fired=True)
        for subject, sent, _ in await _scan(js, "timeouts.saga.>", start)
        if (order_id := _order_id(subject)) is not None
    ]
    return Census((*armed.values(), *fired), now, held=await _held(js))


async def _held(js: JetStreamContext) -> int:
    try:
        return int((await js.consumer_info(EVENTS_STREAM, ORCHESTRATOR_CONSUMER)).num_ack_pending or 0)
    except NotFoundError:
        return 0
