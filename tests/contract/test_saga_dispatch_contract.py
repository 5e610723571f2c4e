"""The saga outbox contract (``app.saga.dispatch``): the in-memory twin and the JetStream adapter queue
a command once per command id and keep one timer per saga."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import ensure_stream
from app.saga import timeouts
from app.saga.dispatch import Dispatch, InMemoryDispatch, JetStreamDispatch
from app.workers.commands import (
    COMMANDS_STREAM,
    Charge,
    Ship,
    WorkerCommand,
    commands_stream_config,
    decode_command,
)

META = Metadata(correlation_id="contract")
LATER = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


@dataclass
class Outbox:
    dispatch: Dispatch
    memory: InMemoryDispatch | None = None
    nc: NATS | None = None

    async def queued(self) -> list[WorkerCommand]:
        if self.memory is not None:
            return [cmd for _, cmd in self.memory.queued]
        assert self.nc is not None
        js, out = self.nc.jetstream(), []
        last = (await js.stream_info(COMMANDS_STREAM)).state.last_seq
        for seq in range(1, last + 1):
            msg = await js.get_msg(COMMANDS_STREAM, seq)
            out.append(decode_command(msg.data or b"", msg.subject.split(".")[1]))  # type: ignore[arg-type]
        return out

    async def timer(self, order_id: int) -> datetime | None:
        if self.memory is not None:
            return self.memory.timers.get(order_id)
        assert self.nc is not None
        try:
            msg = await self.nc.jetstream().get_last_msg(
                timeouts.TIMERS_STREAM, f"sched.saga.{order_id}.timer"
            )
        except NotFoundError:
            return None
        schedule = (msg.headers or {})["Nats-Schedule"].removeprefix("@at ")
        return msgspec.convert(schedule, datetime)


@pytest.fixture
def memory_outbox() -> Outbox:
    twin = InMemoryDispatch()
    return Outbox(twin, memory=twin)


@pytest.fixture
async def jetstream_outbox(nc: NATS) -> Outbox:
    js = nc.jetstream()
    await ensure_stream(js, commands_stream_config(1))
    await ensure_stream(js, timeouts.timers_stream_config(1))
    return Outbox(JetStreamDispatch(js), nc=nc)


@pytest.fixture(params=["memory", "jetstream"])
def outbox(request: pytest.FixtureRequest) -> Outbox:
    found: Outbox = request.getfixturevalue(f"{request.param}_outbox")
    return found


async def test_a_command_is_queued_once_per_command_id(outbox: Outbox) -> None:
    charge = Charge(command_id="1:charge:1", order_id=1, amount="9.99")
    ship = Ship(command_id="1:ship:1", order_id=1, user_id=3)
    await outbox.dispatch.send("payment", charge, META)
    await outbox.dispatch.send("payment", charge, META)  # the outbox resent after a crash
    await outbox.dispatch.send("shipping", ship, META)
    assert await outbox.queued() == [charge, ship]


async def test_a_saga_has_one_timer_rearmed_and_disarmed(outbox: Outbox) -> None:
    assert await outbox.timer(1) is None
    await outbox.dispatch.arm(1, LATER, "start", META)
    assert await outbox.timer(1) == LATER
    await outbox.dispatch.arm(1, LATER + timedelta(minutes=5), "fired:9", META)  # replaces it
    assert await outbox.timer(1) == LATER + timedelta(minutes=5)
    await outbox.dispatch.arm(1, LATER + timedelta(minutes=9), "fired:9", META)  # same cause: no change
    assert await outbox.timer(1) == LATER + timedelta(minutes=5)
    await outbox.dispatch.arm(2, LATER, "start", META)
    await outbox.dispatch.disarm(1)
    assert await outbox.timer(1) is None
    assert await outbox.timer(2) == LATER
