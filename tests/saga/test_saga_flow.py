"""The saga end to end on real NATS, with the orchestrator and workers as in-process tasks."""

from __future__ import annotations

from app.domain.inventory import Stock
from app.domain.order import Order, OrderStatus
from app.domain.saga import SagaStatus, StepName, StepStatus
from tests.saga.conftest import StartSystem


async def test_order_without_items_completes(start_system: StartSystem) -> None:
    system = await start_system()
    await system.create_order(1)
    saga = await system.saga_of(1)
    assert saga.status is SagaStatus.COMPLETED
    order = (await system.orders().load(1)).state
    assert isinstance(order, Order)
    assert order.status is OrderStatus.COMPLETED
    types = [e.envelope.type for e in await system.orders().history(1)]
    assert types == ["OrderCreated", "OrderPaid", "OrderShipped", "OrderCompleted"]
