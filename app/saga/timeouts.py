"""Durable saga timers on NATS message schedules (nats-server >= 2.12).

ONE timer per saga, not one per step: stream ``SAGA_TIMERS`` (``allow_msg_schedules``) holds at most
one schedule per saga on ``sched.saga.<order>.timer`` (the server keeps one schedule per subject;
publishing again replaces it) with ``Nats-Schedule: @at <deadline>`` and ``Nats-Schedule-Target:
timeouts.saga.<order>.due``. The server publishes the target at the deadline — even if every client
process restarted meanwhile — and the saga's durable consumer ``saga-timeouts`` then times out every
running step whose own deadline (its start + ``EDA_SAGA_STEP_TIMEOUT_S``) has passed and arms the timer
again for the earliest deadline still ahead. The timer is armed when the saga starts (its first step's
deadline); steps that start later have later deadlines, so it never fires too late for them, and a
saga that finishes in time costs one schedule and one purge instead of a schedule per step.

Invariant: while a saga has a running step, its timer is armed no later than that step's deadline.
Arming happens in the reaction that starts the saga and in the reaction to a fired timer, before the
trigger is acked; a crash before that redelivers the trigger, whose reaction arms again
(``Nats-Msg-Id`` = ``timer:<order>:<cause>`` dedupes repeats of the same arming). ``@at`` has
one-second resolution; the deadline is rounded up.

When a saga is over (terminal, nothing running) the runner disarms its timer with one purge of
``sched.saga.<order>.>`` (which also covers the per-step timers earlier versions armed on
``sched.saga.<order>.<step>.<attempt>``; those still fire into their step's timeout as before). A crash
before the purge only means the timer fires and finds nothing to do.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from app.eventstore.envelope import Metadata
from app.saga.fulfilment import timeout_subject
from app.workers.commands import meta_headers

TIMERS_STREAM = "SAGA_TIMERS"
TIMEOUTS_CONSUMER = "saga-timeouts"


def timers_stream_config(replicas: int) -> StreamConfig:
    return StreamConfig(
        name=TIMERS_STREAM,
        subjects=["sched.saga.>", "timeouts.saga.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
        max_age=7 * 86400.0,
        allow_msg_schedules=True,
    )


def timeouts_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=TIMEOUTS_CONSUMER,
        filter_subject="timeouts.saga.>",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=5.0,
        max_deliver=-1,
        max_ack_pending=4096,
    )


def deadline(at: datetime) -> str:
    """RFC 3339 UTC, whole seconds, rounded up (never fire early)."""
    at = at.astimezone(UTC)
    whole = at.replace(microsecond=0) + timedelta(seconds=math.ceil(at.microsecond / 1e6))
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedules_of(order_id: int) -> str:
    """The subjects of every schedule of one saga (its timer, and per-step timers of old versions)."""
    return f"sched.saga.{order_id}.>"


async def disarm(js: JetStreamContext, order_id: int) -> None:
    """Drop the saga's pending timer (best effort: a timer that still fires finds nothing due)."""
    await js.purge_stream(TIMERS_STREAM, subject=schedules_of(order_id))


async def arm(js: JetStreamContext, order_id: int, at: datetime, cause: str, meta: Metadata) -> None:
    """(Re)arm the saga's timer to fire at ``at``; ``cause`` (the reaction's trigger) dedupes repeats."""
    target = timeout_subject(order_id)
    headers = meta_headers(meta, f"timer:{order_id}:{cause}")
    headers["Nats-Schedule"] = f"@at {deadline(at)}"
    headers["Nats-Schedule-Target"] = target
    await js.publish(f"sched.saga.{order_id}.timer", b"", headers=headers)
