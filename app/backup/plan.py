"""What a backup holds and in which order: the ONE place to change when a stream is added or dropped.

The cut of a backup is the last sequence of ``EVENTS`` when its snapshot starts (JetStream's snapshot
is point-in-time: messages after it are not in the archive, and the consumer states in it are bounded
to it). The other parts are taken before or after that moment so that, restored together, they form a
state the system can continue from:

1. ``KV_snapshots`` BEFORE the cut: every aggregate snapshot refers to an event at or before the cut
   (a snapshot taken later could hold state the restored log does not have).
2. ``COMMANDS`` BEFORE the cut: no command of a saga step started after the cut comes back. A command
   sent between this part and the cut is missing; its step's timer (part 4) times it out and the saga
   retries or compensates.
3. ``EVENTS``: the cut, with its durable consumers (the saga orchestrator redelivers every event it had
   not acknowledged at the cut and re-sends the commands of the steps still running).
4. ``SAGA_TIMERS`` AFTER the cut: every timer armed by a reaction acknowledged before the cut is there.
   Timers of sagas started after the cut fire and find nothing due.
5. ``DLQ`` after the cut: dead letters keep their original ``EVENTS`` sequences.
6. PostgreSQL schema ``eda`` AFTER the cut: every ``Idempotency-Key`` completed before the cut is there.
   A key whose order is not in the restored log is set back to ``pending`` with its order id at restore,
   so a retry creates that order again under the same id (``postgres.reopen_lost_keys``).
7. ``COUNTERS`` LAST: the order-id counter is above every id in the parts before it. Restore still
   raises it to the highest order id found in ``EVENTS`` and in the idempotency keys, so an older
   counter (or none, from a mirror) never hands out an id twice (``continuity``).

The read model (schema ``readmodel``) is not backed up: restore rebuilds it from ``EVENTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.eventstore.counters import STREAM as COUNTERS
from app.eventstore.jetstream import STREAM as EVENTS
from app.eventstore.snapshots import BUCKET
from app.readmodel.deadletter import DLQ_STREAM
from app.saga.timeouts import TIMERS_STREAM
from app.workers.commands import COMMANDS_STREAM

PG_SCHEMA = "eda"
# Bookkeeping of the target's own migrations, not data: restore migrates the target to its build.
PG_SKIPPED_TABLES = frozenset({"schema_migrations"})


@dataclass(frozen=True, slots=True)
class Part:
    """One step of a backup: a stream (``kind="stream"``) or the PostgreSQL schema (``"postgres"``)."""

    name: str
    kind: Literal["stream", "postgres"]
    why: str
    required: bool = False  # a backup fails without it; optional streams may not exist yet


PLAN: tuple[Part, ...] = (
    Part(f"KV_{BUCKET}", "stream", "aggregate snapshots (before the cut: none refers past it)"),
    Part(COMMANDS_STREAM, "stream", "saga commands not yet taken by a worker (before the cut)"),
    Part(EVENTS, "stream", "the event log, the system of record: the cut", required=True),
    Part(TIMERS_STREAM, "stream", "saga timers (after the cut: every armed timer is there)"),
    Part(DLQ_STREAM, "stream", "dead-lettered events (after the cut)"),
    Part(PG_SCHEMA, "postgres", "idempotency keys, maintenance runs (after the cut)", required=True),
    Part(COUNTERS, "stream", "the order-id counter (last: above every id before it)"),
)
CUT = EVENTS


def stream_parts() -> tuple[Part, ...]:
    return tuple(p for p in PLAN if p.kind == "stream")
