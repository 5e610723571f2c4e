"""Fixtures for the saga tests: the orchestrator and the three workers as in-process tasks against the
session's real nats-server (``nats_url``), each test on emptied JetStream (``js_clean``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from app.domain.order import ORDER, CreateOrder, OrderItem
from app.domain.saga import SAGA, Saga
from app.eventstore.consumer import PullLoop
from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import open_event_store
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.saga.runner import saga_loops
from app.service.handler import CommandHandler
from app.service.repository import Repository
from app.service.sagaview import SagaViews
from app.settings import Settings
from app.workers.commands import WORKERS
from app.workers.runner import worker_loops
from tests.support.eventually import eventually


@dataclass
class System:
    nc: NATS
    store: EventStore
    settings: Settings
    loops: list[PullLoop]
    tasks: list[asyncio.Task[None]]

    def orders(self) -> Repository[Any, Any, Any]:
        return Repository(self.store, ORDER)

    def order_commands(self) -> CommandHandler[Any, Any, Any]:
        return CommandHandler(self.store, ORDER)

    def sagas(self) -> Repository[Any, Any, Any]:
        """The saga's own records (``events.saga.<id>``: only what the order's events do not say)."""
        return Repository(self.store, SAGA)

    async def create_order(
        self, order_id: int, *, items: dict[int, int] | None = None, amount: str = "99.99", user_id: int = 123
    ) -> None:
        cmd = CreateOrder(
            order_id=order_id,
            user_id=user_id,
            items=tuple(OrderItem(product_id=p, quantity=q) for p, q in (items or {}).items()),
            amount=Decimal(amount),
            at=datetime.now(UTC),
        )
        await self.order_commands().execute(order_id, cmd, Metadata(correlation_id=f"corr-{order_id}"))

    async def saga_of(self, order_id: int, *, terminal: bool = True, timeout: float = 10.0) -> Saga:
        """Wait until the saga exists (and is terminal, by default)."""

        async def reached() -> Saga | None:
            state = (await SagaViews(self.store).load(order_id)).saga
            return state if isinstance(state, Saga) and (state.terminal or not terminal) else None

        return await eventually(reached, timeout=timeout, what=f"saga {order_id}")


StartSystem = Callable[..., Awaitable[System]]


@pytest.fixture
async def start_system(nats_url: str, js_clean: None) -> AsyncIterator[StartSystem]:
    """``await start_system(workers=..., **settings)``: saga + workers running in this event loop."""
    started: list[System] = []

    async def start(workers: tuple[str, ...] = WORKERS, **overrides: Any) -> System:
        values: dict[str, Any] = {"nats_url": nats_url, "default_stock": 1000, "health_port": 0}
        values.update(overrides)
        settings = Settings(**values)
        nc = await nats.connect(nats_url)
        store = await open_event_store(nc, settings)
        snapshots = await SnapshotStore.open(nc.jetstream())
        _, loops = await saga_loops(nc, store, settings)
        loops += await worker_loops(nc, workers, settings, store, snapshots)
        tasks = [asyncio.create_task(loop.run()) for loop in loops]
        system = System(nc, store, settings, loops, tasks)
        started.append(system)
        return system

    yield start
    for system in started:
        for loop in system.loops:
            loop.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*system.tasks, return_exceptions=True), 10)
        await system.store.close()
        await system.nc.close()
