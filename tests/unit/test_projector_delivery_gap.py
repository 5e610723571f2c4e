"""The projector never acknowledges past a lost delivery: with ack policy "all", applying and acking the
message after a gap in the consumer's delivery sequence (a consumer leader change can lose deliveries in
flight) would acknowledge — and skip forever — the lost ones. It applies what came in order and restarts
the consumer from the checkpoint instead. Found by tests/chaos/test_leader_kill.py (read model missing
events after EVENTS leader kills); here with crafted deliveries, no server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nats.aio.msg import Msg

from app.eventstore.codec import EventCodec
from app.readmodel.projector import DeliveryGap, Projector


class _Sub:
    async def unsubscribe(self) -> None:
        return None


class _FakeNats:
    """Delivers ``deliveries`` (stream seq, delivery seq) to the projector's inbox on its first pull."""

    def __init__(self, deliveries: list[tuple[int, int]]) -> None:
        self.deliveries = deliveries
        self.cb: Callable[[Msg], Awaitable[None]] | None = None
        self.pulls = 0

    def jetstream(self, timeout: float) -> object:
        return object()

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]]) -> _Sub:
        self.cb = cb
        return _Sub()

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "") -> None:
        self.pulls += 1
        if self.pulls == 1 and self.cb is not None:
            for sseq, dseq in self.deliveries:
                reply_to = f"$JS.ACK.EVENTS.projector-orders.1.{sseq}.{dseq}.1700000000000000000.0"
                await self.cb(Msg(self, subject="events.order.1", reply=reply_to, data=b"{}"))  # type: ignore[arg-type]


async def _consume(deliveries: list[tuple[int, int]]) -> list[int]:
    nc = _FakeNats(deliveries)
    projector = Projector(nc, EventCodec([]), "postgresql://unused", "readmodel")  # type: ignore[arg-type]
    applied: list[int] = []

    async def reset(checkpoint: int) -> None:
        return None

    async def apply(conn: Any, msgs: list[Msg]) -> None:
        applied.extend(m.metadata.sequence.stream for m in msgs)

    projector._reset_consumer = reset  # type: ignore[method-assign]
    projector._apply = apply  # type: ignore[method-assign]
    with pytest.raises(DeliveryGap):
        await projector._consume(None, 0)  # type: ignore[arg-type]
    return applied


async def test_a_lost_delivery_stops_before_the_gap() -> None:
    # deliveries 4 and 5 (stream 14, 15) were lost in a leader change; 6 must not be applied or acked
    assert await _consume([(11, 1), (12, 2), (13, 3), (16, 6), (17, 7)]) == [11, 12, 13]


async def test_a_delivery_sequence_going_back_restarts_too() -> None:
    assert await _consume([(11, 1), (12, 2), (12, 2), (13, 3)]) == [11, 12]


async def test_a_gap_at_the_start_applies_nothing() -> None:
    assert await _consume([(15, 3), (16, 4)]) == []
