"""Cache-first reads against a real nats-server: an unverified load answers from the cache, a verified
one catches up; an aggregate assumed new is decided without a read, and a redelivered command that
opens an existing aggregate is recognised (nothing applied twice)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from app.domain.order import ORDER, CancelOrder, CreateOrder, Order, OrderStatus
from app.domain.payment import PAYMENT, ChargePayment
from app.eventstore.envelope import NEW, Metadata
from app.eventstore.jetstream import JetStreamEventStore
from app.service.repository import Repository
from app.service.statecache import StateCache
from app.workers.base import decide_and_append

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="test")


async def test_unverified_loads_answer_from_the_cache_verified_ones_catch_up(
    store: JetStreamEventStore,
) -> None:
    repo = Repository(store, ORDER)
    await repo.execute(1, CreateOrder(order_id=1, user_id=2, items=(), amount=Decimal("5.00"), at=T0), META)
    cache = StateCache(store, repo)
    first = await cache.load(1)
    await repo.execute(1, CancelOrder(order_id=1, reason="other writer", at=T0), META)
    stale = await cache.load(1, verify=False)
    assert stale == first
    fresh = await cache.load(1, verify=True)
    assert isinstance(fresh.state, Order)
    assert fresh.state.status is OrderStatus.CANCELLED
    assert fresh.position.version == 2


async def test_assume_new_only_for_aggregates_not_cached(store: JetStreamEventStore) -> None:
    repo = Repository(store, ORDER)
    cache = StateCache(store, repo)
    cache.assume_new(7)
    assumed = await cache.load(7, verify=False)
    assert (assumed.state, assumed.position) == (ORDER.initial, NEW)
    await repo.execute(8, CreateOrder(order_id=8, user_id=2, items=(), amount=Decimal("5.00"), at=T0), META)
    known = await cache.load(8)
    cache.assume_new(8)
    assert await cache.load(8, verify=False) == known


async def test_a_redelivered_opening_command_is_not_applied_twice(store: JetStreamEventStore) -> None:
    repo = Repository(store, PAYMENT)

    def charge() -> ChargePayment:
        return ChargePayment(order_id=3, amount=Decimal("9.99"), command_id="3:charge_payment:0", at=T0)

    for _ in range(3):  # the first delivery and two redeliveries, each decided on an assumed-new state
        await decide_and_append(
            store, repo, 3, charge, command_id="3:charge_payment:0", meta=META, assume_new=True
        )
    # the repeats are recognised (same event ids after the expected position, or a conflict and the
    # command id on the stored state): one charge
    assert [type(e.event).__name__ for e in await repo.history(3)] == ["PaymentCharged"]
