"""The order projection's fold: which events it reads and how they become ``OrderView`` rows in memory.

``evolve_view(view, event)`` / ``fold_views(views, events)`` apply recorded events to ``OrderView``
values (the domain state + version + last sequence); events at or below a view's version are skipped,
and event types this build does not know bump the version but keep the state. ``BulkFold`` is the
same fold for a rebuild's bulk phase, on mutable lists (tests/unit/test_bulk_fold.py holds it equal
to ``fold_views``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.domain.order import (
    INITIAL,
    ORDER,
    Order,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    OrderStatus,
)
from app.eventstore.envelope import RecordedEvent

log = logging.getLogger(__name__)

PROJECTION = "orders"
SUBJECTS = "events.order.>"


@dataclass(frozen=True, slots=True)
class OrderView:
    """One row of ``orders``: the domain state plus its version and the last applied sequence."""

    state: Order
    version: int
    last_sequence: int


def order_id_of(event: RecordedEvent) -> int | None:
    """The order id of an order event (``None`` for ids that are not integers: never projected)."""
    try:
        return int(event.envelope.aggregate_id)
    except ValueError:
        return None


def evolve_view(view: OrderView | None, event: RecordedEvent) -> OrderView | None:
    """Apply one recorded event; events at or below the view's version are ignored (already in)."""
    if view is not None and event.version <= view.version:
        return view
    if event.event is None:  # a type this build does not know: count it, keep the state
        if view is None:
            return None
        return OrderView(view.state, event.version, event.sequence)
    try:
        state = ORDER.evolve(view.state if view is not None else INITIAL, event.event)
    except TypeError:  # cannot happen for a well-formed stream; never block the projection on it
        log.error(
            "order %s: %s v%d does not apply, skipped", event.stream_id, event.envelope.type, event.version
        )
        return view
    if not isinstance(state, Order):
        return view
    return OrderView(state, event.version, event.sequence)


def fold_views(views: dict[int, OrderView], events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
    """Fold ``events`` into ``views`` in place; returns the events that took effect (for the timeline)."""
    applied = []
    for event in events:
        order_id = order_id_of(event)
        if order_id is None:
            continue
        before = views.get(order_id)
        after = evolve_view(before, event)
        if after is None or after is before:
            continue
        views[order_id] = after
        applied.append(event)
    return applied


# indexes into a BulkFold accumulator: the Order fields in declaration order, version, sequence, owner
_UPDATED, _PAYMENT, _TRACKING, _CANCEL, _STATUS, _VERSION, _SEQUENCE, _OWNER = 7, 8, 9, 10, 5, 11, 12, 13


class BulkFold:
    """``fold_views`` for a rebuild's bulk phase: the same results, but each order is a mutable list
    updated in place (no ``Order`` copy per event). The five order events take a direct path; anything
    else (unknown types, an event before ``OrderCreated``, ...) goes through ``evolve_view`` itself."""

    def __init__(self) -> None:
        self._accs: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._accs)

    def fold(self, events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
        """Fold ``events``; returns those that took effect (for the timeline), like ``fold_views``."""
        accs, applied = self._accs, []
        for event in events:
            env = event.envelope
            try:
                order_id = int(env.aggregate_id)
            except ValueError:
                continue
            acc = accs.get(order_id)
            version = env.aggregate_version
            if acc is not None and version <= acc[_VERSION]:
                continue
            ev = event.event
            kind = type(ev)
            if kind is OrderCreated:
                accs[order_id] = [
                    ev.order_id, ev.user_id, ev.items, ev.amount, ev.currency, OrderStatus.CREATED,
                    ev.at, ev.at, None, None, None, version, event.sequence, ev.owner,
                ]  # fmt: skip
            elif acc is None or not self._direct(acc, kind, ev):
                before = None if acc is None else _view_of(acc)
                after = evolve_view(before, event)
                if after is None or after is before:
                    continue
                accs[order_id] = _acc_of(after)
                applied.append(event)
                continue
            else:
                acc[_VERSION] = version
                acc[_SEQUENCE] = event.sequence
            applied.append(event)
        return applied

    @staticmethod
    def _direct(acc: list[Any], kind: type[Any], ev: Any) -> bool:
        """Apply a state transition of an existing order in place; ``False`` if not one of those."""
        if kind is OrderPaid:
            acc[_STATUS], acc[_PAYMENT] = OrderStatus.PAID, ev.payment_id
        elif kind is OrderShipped:
            acc[_STATUS], acc[_TRACKING] = OrderStatus.SHIPPED, ev.tracking_number
        elif kind is OrderCompleted:
            acc[_STATUS] = OrderStatus.COMPLETED
        elif kind is OrderCancelled:
            acc[_STATUS], acc[_CANCEL] = OrderStatus.CANCELLED, ev.reason
        else:
            return False
        acc[_UPDATED] = ev.at
        return True

    def views(self) -> dict[int, OrderView]:
        """The folded orders as ``OrderView`` values (what ``fold_views`` would hold)."""
        return {order_id: _view_of(acc) for order_id, acc in self._accs.items()}


def _view_of(acc: list[Any]) -> OrderView:
    state = Order(
        order_id=acc[0],
        user_id=acc[1],
        items=acc[2],
        amount=acc[3],
        currency=acc[4],
        status=acc[5],
        created_at=acc[6],
        updated_at=acc[7],
        payment_id=acc[8],
        tracking_number=acc[9],
        cancel_reason=acc[10],
        owner=acc[_OWNER],
    )
    return OrderView(state, acc[_VERSION], acc[_SEQUENCE])


def _acc_of(view: OrderView) -> list[Any]:
    s = view.state
    return [
        s.order_id, s.user_id, s.items, s.amount, s.currency, s.status, s.created_at, s.updated_at,
        s.payment_id, s.tracking_number, s.cancel_reason, view.version, view.last_sequence, s.owner,
    ]  # fmt: skip
