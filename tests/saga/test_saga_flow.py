"""The saga end to end on real NATS, with the orchestrator and workers as in-process tasks."""

from __future__ import annotations

from app.domain.inventory import Stock
from app.domain.order import Order, OrderStatus
from app.domain.saga import SagaStatus, StepName, StepStatus
from tests.saga.conftest import StartSystem
from tests.support.eventually import eventually


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
    await _no_pending_timers(system, 1)


async def _no_pending_timers(system: object, order_id: int) -> None:
    """The saga armed its timer; a finished saga disarms it (nothing left to fire)."""
    import asyncio

    from app.saga.timeouts import TIMERS_STREAM, schedules_of

    js = system.nc.jetstream()  # type: ignore[attr-defined]
    for _ in range(100):
        info = await js.stream_info(TIMERS_STREAM, subjects_filter=schedules_of(order_id))
        if not info.state.subjects:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"saga {order_id} left timers armed: {info.state.subjects}")


async def _stock(system: object, product_id: int) -> tuple[int, int]:
    from app.domain.inventory import STOCK
    from app.service.repository import Repository

    repo = Repository(system.store, STOCK)  # type: ignore[attr-defined]
    state = (await repo.load(product_id)).state
    assert isinstance(state, Stock)
    return state.stock, state.available


async def test_happy_path_reserves_charges_ships_and_commits(start_system: StartSystem) -> None:
    system = await start_system()
    await system.create_order(2, items={1: 2, 2: 3})
    saga = await system.saga_of(2)
    assert saga.status is SagaStatus.COMPLETED
    assert {s.name: s.status for s in saga.steps}[StepName.SHIP] is StepStatus.SUCCEEDED
    commit = await _wait_step(system, 2, StepName.COMMIT)
    assert commit.status is StepStatus.SUCCEEDED
    assert await _stock(system, 1) == (998, 998)
    assert await _stock(system, 2) == (997, 997)
    history = await system.orders().history(2)
    assert [e.envelope.type for e in history] == [
        "OrderCreated",
        "OrderPaid",
        "OrderShipped",
        "OrderCompleted",
    ]
    assert {e.envelope.correlation_id for e in history} == {"corr-2"}
    saga_history = await system.sagas().history(2)
    assert {e.envelope.correlation_id for e in saga_history} == {"corr-2"}
    # the saga's records (the reservation's outcome, the commit's) and the order's events it appends
    # are caused by the facts it reacted to: OrderPaid by the payment
    from app.domain.payment import PAYMENT
    from app.service.repository import Repository

    [charged] = await Repository(system.store, PAYMENT).history(2)
    assert history[1].envelope.causation_id == charged.envelope.event_id
    await _no_pending_timers(system, 2)


async def _wait_step(system: object, order_id: int, step: StepName) -> object:
    async def finished() -> object:
        found = (await system.saga_of(order_id)).step(step)  # type: ignore[attr-defined]
        return found if found is not None and found.status is not StepStatus.RUNNING else None

    return await eventually(finished, timeout=5, what=f"{step} finished")


async def test_declined_payment_releases_stock_and_cancels(start_system: StartSystem) -> None:
    system = await start_system(payment_decline_above=100)
    await system.create_order(3, items={5: 4}, amount="150.00")
    saga = await system.saga_of(3)
    assert saga.status is SagaStatus.CANCELLED
    assert "declined" in (saga.reason or "")
    order = (await system.orders().load(3)).state
    assert isinstance(order, Order)
    assert order.status is OrderStatus.CANCELLED
    assert await _stock(system, 5) == (1000, 1000)


async def test_insufficient_stock_cancels_without_charging(start_system: StartSystem) -> None:
    from app.domain.payment import PAYMENT
    from app.service.repository import Repository

    system = await start_system(default_stock=3)
    await system.create_order(4, items={7: 2, 8: 5})
    saga = await system.saga_of(4)
    assert saga.status is SagaStatus.CANCELLED
    assert saga.step(StepName.CHARGE) is None
    assert await Repository(system.store, PAYMENT).history(4) == []
    order = (await system.orders().load(4)).state
    assert isinstance(order, Order)
    assert order.status is OrderStatus.CANCELLED


async def test_payment_timeout_compensates(start_system: StartSystem) -> None:
    from app.domain.payment import PAYMENT
    from app.service.repository import Repository

    system = await start_system(saga_step_timeout_s=1.0, payment_fault_delay_s=4.0)
    await system.create_order(5, items={9: 1})
    saga = await system.saga_of(5, timeout=15)
    assert saga.status is SagaStatus.CANCELLED
    charge = saga.step(StepName.CHARGE)
    assert charge is not None
    assert charge.status is StepStatus.TIMED_OUT
    assert await _stock(system, 9) == (1000, 1000)
    import asyncio

    await asyncio.sleep(4.5)  # the slow charge may land after the saga gave up: never money kept
    payment = [e.envelope.type for e in await Repository(system.store, PAYMENT).history(5)]
    assert payment in (["PaymentVoided"], ["PaymentCharged", "PaymentRefunded"])


async def test_shipping_failure_refunds_and_releases(start_system: StartSystem) -> None:
    from app.domain.payment import PAYMENT
    from app.service.repository import Repository

    system = await start_system(shipping_fail_user_ids="666")
    await system.create_order(6, items={11: 1}, user_id=666)
    saga = await system.saga_of(6)
    assert saga.status is SagaStatus.CANCELLED
    types = [e.envelope.type for e in await Repository(system.store, PAYMENT).history(6)]
    assert types == ["PaymentCharged", "PaymentRefunded"]
    assert await _stock(system, 11) == (1000, 1000)
    order_types = [e.envelope.type for e in await system.orders().history(6)]
    assert order_types == ["OrderCreated", "OrderPaid", "OrderCancelled"]


async def test_user_cancel_during_payment_compensates(start_system: StartSystem) -> None:
    import asyncio
    from datetime import UTC, datetime

    from app.domain.order import CancelOrder
    from app.domain.payment import PAYMENT
    from app.eventstore.envelope import Metadata
    from app.service.repository import Repository

    system = await start_system(payment_fault_delay_s=1.0)
    await system.create_order(7, items={12: 1})
    await system.saga_of(7, terminal=False)
    await asyncio.sleep(0.3)
    cancel = CancelOrder(order_id=7, reason="changed my mind", at=datetime.now(UTC))
    await system.order_commands().execute(7, cancel, Metadata(correlation_id="corr-7"))
    saga = await system.saga_of(7)
    assert saga.status is SagaStatus.CANCELLED
    await asyncio.sleep(1.2)
    payment = [e.envelope.type for e in await Repository(system.store, PAYMENT).history(7)]
    assert payment in (["PaymentVoided"], ["PaymentCharged", "PaymentRefunded"])
    assert await _stock(system, 12) == (1000, 1000)
    order = (await system.orders().load(7)).state
    assert isinstance(order, Order)
    assert order.status is OrderStatus.CANCELLED


async def test_a_finished_saga_s_timers_never_fire(start_system: StartSystem) -> None:
    import asyncio

    from app.saga.timeouts import TIMERS_STREAM

    system = await start_system(saga_step_timeout_s=1.0)
    await system.create_order(21)
    assert (await system.saga_of(21)).status is SagaStatus.COMPLETED
    await _no_pending_timers(system, 21)
    await asyncio.sleep(2.5)  # past every deadline (1 s, rounded up to the next second)
    js = system.nc.jetstream()
    info = await js.stream_info(TIMERS_STREAM, subjects_filter="timeouts.saga.21.>")
    assert not info.state.subjects, f"disarmed timers fired: {info.state.subjects}"


async def test_a_step_started_after_the_timer_was_armed_times_out_on_its_own_deadline(
    start_system: StartSystem,
) -> None:
    """One timer per saga, armed for the first step: the charge answers in 1.5 s (within its 2 s), the
    shipment then never answers (no shipping worker). The timer fires at the charge's deadline, finds
    the shipment not yet due, fires again at the shipment's deadline and times it out."""
    import asyncio

    system = await start_system(
        workers=("inventory", "payment"), saga_step_timeout_s=2.0, payment_fault_delay_s=1.5
    )
    await system.create_order(22)
    for _ in range(300):
        saga = await system.saga_of(22, terminal=False)
        ship, refund = saga.step(StepName.SHIP), saga.step(StepName.REFUND)
        if refund is not None and refund.status is StepStatus.SUCCEEDED:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the shipment never timed out and was never compensated: {saga}")
    charge = saga.step(StepName.CHARGE)
    assert charge is not None
    assert charge.status is StepStatus.SUCCEEDED
    assert ship is not None
    assert ship.status is StepStatus.TIMED_OUT
    assert ship.finished_at is not None
    assert (ship.finished_at - ship.started_at).total_seconds() >= 2.0  # not early
    assert saga.status is SagaStatus.COMPENSATING  # the recall is retried: no shipping worker runs
