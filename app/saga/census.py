"""Which sagas are in flight and which run past their timeout, read from the durable timer index.

The orchestrator keeps an invariant (``app.saga.timeouts``): while a saga has a running step, its timer
is armed — a schedule on ``sched.saga.<order>.timer`` in stream ``SAGA_TIMERS`` due no later than that
step's deadline — or has just fired: the server published ``timeouts.saga.<order>.due`` and the
durable consumer ``saga-timeouts`` has not acknowledged it yet. A finished saga's timer is purged. So
the timers name every saga in flight at no cost on the saga's path, and two states mean a saga runs
longer than its timeout allows:

- an armed timer whose time passed ``grace`` ago (the server did not fire it);
- a fired timer not handled within ``grace`` (the orchestrator is down, stuck or failing on it).

Both are read with headers-only ephemeral consumers (no payloads; ``Nats-Schedule: @at <time>`` gives
an armed timer's due time, the message time a fired one's). A fired timer acknowledged out of order
beyond the consumer's ack floor still counts as unhandled for the moment it takes the floor to pass it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from app.saga.timeouts import TIMEOUTS_CONSUMER, TIMERS_STREAM

GRACE_S = 30.0
_FETCH = 1000
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

    def in_flight(self) -> frozenset[int]:
        """The orders whose saga has a running step."""
        return frozenset(t.order_id for t in self.timers)

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


async def _scan(js: JetStreamContext, subject: str, start: int | None) -> Scanned:
    """(subject, message time, Nats-Schedule header) of the messages on ``subject`` from ``start``."""
    config = ConsumerConfig(
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        headers_only=True,
        inactive_threshold=10.0,  # if this process dies mid-scan
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
        opt_start_seq=start,
    )
    sub = await js.pull_subscribe(subject, stream=TIMERS_STREAM, config=config)
    out: Scanned = []
    try:
        pending = int((await sub.consumer_info()).num_pending or 0)
        while len(out) < pending:
            for msg in await sub.fetch(min(_FETCH, pending - len(out)), timeout=5.0):
                sent = msg.metadata.timestamp if msg.metadata else datetime.now(UTC)
                out.append((msg.subject, sent, (msg.headers or {}).get(_SCHEDULE)))
    finally:
        with contextlib.suppress(Exception):
            name = (await sub.consumer_info()).name
            await sub.unsubscribe()
            await js.delete_consumer(TIMERS_STREAM, name)  # not left to linger in consumer listings
    return out


async def take(js: JetStreamContext) -> Census:
    """Read the timer index now (an empty census when the saga has never run)."""
    now = datetime.now(UTC)
    try:
        floor = (await js.consumer_info(TIMERS_STREAM, TIMEOUTS_CONSUMER)).ack_floor
    except NotFoundError:
        return Census((), now)
    armed: dict[str, Timer] = {}
    for subject, sent, schedule in await _scan(js, "sched.saga.>", None):
        order_id = _order_id(subject)
        if order_id is not None:  # one schedule per subject: a later one replaced an earlier one
            armed[subject] = Timer(order_id, _at(schedule) or sent, fired=False)
    start = (floor.stream_seq if floor else 0) + 1
    fired = [
        Timer(order_id, sent, fired=True)
        for subject, sent, _ in await _scan(js, "timeouts.saga.>", start)
        if (order_id := _order_id(subject)) is not None
    ]
    return Census((*armed.values(), *fired), now)
