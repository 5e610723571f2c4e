"""Ids stay unique across a restore: the order-id counter continues above every restored id.

Order ids come from the ``COUNTERS`` stream (``app.api.ids``; layout in ``app.eventstore.counters``).
After a restore the counter is raised to the highest order id found in the restored ``EVENTS``
(subjects ``events.order.<id>``) and in the restored idempotency keys (an id allocated for a key whose
order was never stored) — so a counter backed up earlier than the last event, or none at all (a restore
from the mirror), never hands an id out twice. Event ids are UUIDv7 (time-ordered, random): a new one
never equals a restored one. Idempotency keys come back with the PostgreSQL dump.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from app.eventstore.counters import ORDER_ID_SUBJECT, STREAM, counters_stream_config
from app.eventstore.jetstream import ensure_stream
from app.service.snapshotter import subject_counts

ORDER_SUBJECTS = "events.order.*"


@dataclass(frozen=True, slots=True)
class CounterResult:
    before: int
    floor: int
    after: int


async def restored_order_ids(nc: NATS) -> set[int]:
    """Every order id with events in ``EVENTS``."""
    counts = await subject_counts(nc, ORDER_SUBJECTS)
    return {int(s.rsplit(".", 1)[1]) for s in counts if s.rsplit(".", 1)[1].isdigit()}


async def counter_value(nc: NATS) -> int:
    """The order-id counter's current value (0 when it has never counted)."""
    try:
        msg = await nc.jetstream().get_last_msg(STREAM, ORDER_ID_SUBJECT)
    except NotFoundError:
        return 0
    return int(orjson.loads(msg.data or b"{}").get("val", 0))


async def raise_counter(nc: NATS, floor: int, *, replicas: int = 1) -> CounterResult:
    """Make the counter at least ``floor`` (one increment by the difference; never lowers it)."""
    await ensure_stream(nc.jetstream(), counters_stream_config(replicas))
    before = await counter_value(nc)
    after = before
    if before < floor:
        reply = await nc.request(ORDER_ID_SUBJECT, b"", headers={"Nats-Incr": str(floor - before)}, timeout=5)
        after = int(orjson.loads(reply.data)["val"])
    return CounterResult(before, floor, after)
