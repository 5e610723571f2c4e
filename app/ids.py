"""Order id allocation: small integers from a JetStream counter, without a central lock.

Stream ``COUNTERS`` (``allow_msg_counter``, subjects ``counters.>``): a request on ``counters.order_id``
with header ``Nats-Incr: 1`` atomically increments the counter and answers ``{"val": "N"}``. The
server serialises increments, so concurrent API replicas never get the same id. Only the latest value
per subject is kept. Retries of one idempotent request reuse the id stored with its Idempotency-Key
(see ``app.api.idempotency``), so they never burn a second id.
"""

from __future__ import annotations

import orjson
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext

from app.eventstore.jetstream import ensure_stream

STREAM = "COUNTERS"
ORDER_ID_SUBJECT = "counters.order_id"


class IdAllocationError(RuntimeError):
    """The counter did not answer with a value."""


def counters_stream_config(replicas: int) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=["counters.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_msg_counter=True,
        max_msgs_per_subject=1,
        allow_direct=True,
    )


class OrderIds:
    """Allocates order ids; create with ``await OrderIds.open(nc)``."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout

    @classmethod
    async def open(cls, nc: NATS, *, replicas: int = 1, timeout: float = 5.0) -> OrderIds:
        js: JetStreamContext = nc.jetstream(timeout=timeout)
        await ensure_stream(js, counters_stream_config(replicas))
        return cls(nc, timeout=timeout)

    async def next(self) -> int:
        """A fresh order id (1, 2, 3, ...)."""
        msg = await self._nc.request(ORDER_ID_SUBJECT, b"", headers={"Nats-Incr": "1"}, timeout=self._timeout)
        reply = orjson.loads(msg.data)
        if "val" not in reply:
            raise IdAllocationError(f"counter error: {reply.get('error')}")
        return int(reply["val"])
