"""The rebuild's index-based ``BulkFold`` is a second copy of the order projection's fold: on any
sequence of recorded events — several orders interleaved, repeats and stale versions, events before
their order exists, unknown types, ids that are not integers, batches of any size — it takes the same
events into effect and ends with the same views as ``fold_views``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import order
from app.eventstore.envelope import Envelope, RecordedEvent
from app.readmodel.fold import BulkFold, fold_views

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _event(kind: str, order_id: int, n: int) -> Any:
    at = T0 + timedelta(seconds=n)
    match kind:
        case "created":
            items = (order.OrderItem(product_id=n % 3 + 1, quantity=n % 2 + 1),)
            return order.OrderCreated(
                order_id=order_id,
                user_id=n % 4 + 1,
                items=items,
                amount=Decimal(n),
                currency="USD",
                at=at,
                owner=f"u{n % 4}",
            )
        case "paid":
            return order.OrderPaid(order_id=order_id, payment_id=f"p{n}", amount=Decimal(n), at=at)
        case "shipped":
            return order.OrderShipped(order_id=order_id, tracking_number=f"t{n}", at=at)
        case "completed":
            return order.OrderCompleted(order_id=order_id, at=at)
        case "cancelled":
            return order.OrderCancelled(order_id=order_id, reason=f"r{n}", at=at)
        case _:
            return None  # a type this build does not know


def _recorded(n: int, aggregate_id: str, version: int, kind: str) -> RecordedEvent:
    order_id = int(aggregate_id) if aggregate_id.isdigit() else 0
    event = _event(kind, order_id, n)
    envelope = Envelope(
        event_id=f"e{n}",
        type=type(event).TYPE if event is not None else "OrderGiftWrapped",
        schema_version=1,
        aggregate_type="order",
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=T0,
        correlation_id="c",
        causation_id=None,
        traceparent=None,
        data={},
    )
    return RecordedEvent(envelope=envelope, sequence=n + 1, event=event)


KINDS = st.sampled_from(["created", "created", "paid", "shipped", "completed", "cancelled", "unknown"])
STEP = st.tuples(st.sampled_from(["1", "2", "3", "x-9"]), st.integers(-1, 2), KINDS)


@st.composite
def streams(draw: st.DrawFn) -> list[RecordedEvent]:
    """Interleaved order streams whose versions mostly go up by one, sometimes repeat or go back."""
    versions: dict[str, int] = {}
    out = []
    for n, (aggregate_id, step, kind) in enumerate(draw(st.lists(STEP, max_size=60))):
        version = max(1, versions.get(aggregate_id, 0) + (1 if step >= 0 else step))
        versions[aggregate_id] = max(versions.get(aggregate_id, 0), version)
        out.append(_recorded(n, aggregate_id, version, kind))
    return out


@settings(max_examples=200, deadline=None)
@given(events=streams(), cuts=st.lists(st.integers(0, 60), max_size=4))
def test_bulk_fold_equals_the_order_fold(events: list[RecordedEvent], cuts: list[int]) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(events)), len(events)]
    bulk, views = BulkFold(), {}  # type: ignore[var-annotated]
    for start, end in itertools.pairwise(bounds):
        batch = events[start:end]
        assert bulk.fold(batch) == fold_views(views, batch)
    assert bulk.views() == views
    assert len(bulk) == len(views)
