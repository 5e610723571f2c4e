"""A saga's step timeout without a stored timer on the happy path (issue 16): the trigger is held.

After a reaction that leaves a step running, the runner keeps the trigger message unacknowledged
(``HELD``) instead of arming the saga's durable timer; the saga's next reaction acks it. Most sagas
finish their step within ``threshold`` (well below ``EDA_SAGA_STEP_TIMEOUT_S``) and so store no timer
and purge none. A trigger still held after ``threshold`` — its step is slow — gets the durable timer
(``app.saga.timeouts``, armed for the step's deadline) and is acked then; from there the timer's
invariant holds as before. A crash loses nothing: a held trigger is unacknowledged, so JetStream
redelivers it after the consumer's ``ack_wait`` (above ``threshold``), and a redelivered trigger whose
saga still runs arms the timer at once. So while a step runs, its saga has a held trigger or an
armed timer — in this process, or in the server's redelivery of the trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from app.domain.saga import Saga
from app.eventstore.consumer import HELD, Held
from app.eventstore.envelope import Metadata

HOLD_S = 2.0
"""How long a trigger is held at most (below the orchestrator consumer's ``ack_wait`` of 5 s)."""

Arm = Callable[[int, str, Metadata], Awaitable[None]]
"""Arm the durable timer of a saga for its running steps (order id, cause, metadata)."""


@dataclass(slots=True)
class _Hold:
    msg: Msg
    meta: Metadata
    cause: str
    since: float


class HeldTriggers:
    def __init__(self, arm: Arm, *, step_timeout_s: float) -> None:
        self._arm = arm
        # a short step timeout (tests use 1 s) must still fire on time: hold at most half of it
        self.threshold = min(HOLD_S, step_timeout_s / 2)
        self._held: dict[int, _Hold] = {}

    def __len__(self) -> int:
        return len(self._held)

    async def settle(
        self, order_id: int, msg: Msg, saga: Saga | None, meta: Metadata, cause: str
    ) -> Held | None:
        """After the reaction to ``msg``: ack the saga's previous held trigger; hold ``msg`` while a
        step runs (``HELD``), or arm the timer now when ``msg`` was redelivered (the previous holder
        may be gone); ``None``: ack ``msg``."""
        previous = self._held.pop(order_id, None)
        if previous is not None:
            await _ack(previous.msg)
        if saga is None or not saga.running():
            return None
        if msg.metadata is not None and msg.metadata.num_delivered > 1:
            await self._arm(order_id, cause, meta)
            return None
        self._held[order_id] = _Hold(msg, meta, cause, time.monotonic())
        return HELD

    async def sweep(self) -> None:
        """Triggers held longer than ``threshold``: arm their saga's timer, then ack them."""
        now = time.monotonic()
        due = [(oid, h) for oid, h in self._held.items() if now - h.since >= self.threshold]
        await asyncio.gather(*(self._expire(order_id, hold) for order_id, hold in due))

    async def _expire(self, order_id: int, hold: _Hold) -> None:
        if self._held.get(order_id) is not hold:
            return  # its saga reacted meanwhile (and acked it)
        await self._arm(order_id, hold.cause, hold.meta)
        if self._held.get(order_id) is hold:
            del self._held[order_id]
            await _ack(hold.msg)


async def _ack(msg: Msg) -> None:
    with contextlib.suppress(Exception):  # lost: redelivered after ack_wait, and handled as such
        await msg.ack()
