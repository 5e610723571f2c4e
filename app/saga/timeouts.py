"""Durable step timers on NATS message schedules (nats-server >= 2.12).

Stream ``SAGA_TIMERS`` (``allow_msg_schedules``): when a step starts, the runner publishes on
``sched.saga.<order>.<step>.<attempt>`` with ``Nats-Schedule: @at <deadline>`` and
``Nats-Schedule-Target: timeouts.saga.<order>.<step>.<attempt>``. The server publishes the target at
the deadline — even if every client process restarted meanwhile — and the saga's durable consumer
``saga-timeouts`` turns it into a ``StepTimedOut`` fact (ignored if the step finished in time).
The schedule's ``Nats-Msg-Id`` is derived from the command id, so re-arming after a crash dedupes.
``@at`` has one-second resolution; the deadline is rounded up.

When a saga is over (terminal, nothing running) the runner disarms its pending schedules with one
purge of ``sched.saga.<order>.>``: otherwise every step's timer would still fire later and cost a
stored message, a delivery and a reaction that decides nothing. A crash before the purge only means
those timers fire and are ignored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from app.domain.saga import Step
from app.eventstore.envelope import Metadata
from app.messaging import meta_headers
from app.saga.fulfilment import timeout_subject

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


def deadline(started_at: datetime, timeout_s: float) -> str:
    """RFC 3339 UTC, whole seconds, rounded up (never fire early)."""
    at = started_at.astimezone(UTC) + timedelta(seconds=timeout_s)
    whole = at.replace(microsecond=0) + timedelta(seconds=math.ceil(at.microsecond / 1e6))
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedules_of(order_id: int) -> str:
    """The subjects of every schedule of one saga."""
    return f"sched.saga.{order_id}.>"


async def disarm(js: JetStreamContext, order_id: int) -> None:
    """Drop the saga's pending schedules (best effort: a timer that still fires is ignored)."""
    await js.purge_stream(TIMERS_STREAM, subject=schedules_of(order_id))


async def arm(js: JetStreamContext, order_id: int, step: Step, timeout_s: float, meta: Metadata) -> None:
    """Schedule the step's timeout (idempotent per step attempt)."""
    target = timeout_subject(order_id, step.name, step.attempt)
    headers = meta_headers(meta, f"timer:{step.command_id}")
    headers["Nats-Schedule"] = f"@at {deadline(step.started_at, timeout_s)}"
    headers["Nats-Schedule-Target"] = target
    await js.publish("sched" + target.removeprefix("timeouts"), b"", headers=headers)
