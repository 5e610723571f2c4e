"""Checks over the whole event store after a run: every saga terminal and consistent with its order,
stock never negative, every charge completed or refunded, no command applied twice."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from app.domain.saga import Saga, SagaState, SagaStatus
from app.eventstore.envelope import RecordedEvent
from app.eventstore.jetstream import JetStreamEventStore
from app.service.sagaview import EMPTY, fold_recorded, merged


async def all_events(store: JetStreamEventStore) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    seq = 1
    while True:
        batch = await store.read_all(seq, limit=1000)
        if not batch:
            return out
        out.extend(batch)
        seq = batch[-1].sequence + 1


def saga_views(events: list[RecordedEvent]) -> dict[int, SagaState]:
    """Every order's saga as its view folds it (its records and its order's events)."""
    by_stream: dict[tuple[str, str], list[RecordedEvent]] = defaultdict(list)
    for e in events:
        by_stream[(e.envelope.aggregate_type, e.envelope.aggregate_id)].append(e)
    return {
        int(agg_id): fold_recorded(EMPTY, merged(by_stream.get(("saga", agg_id), []), stream)).saga
        for (agg, agg_id), stream in by_stream.items()
        if agg == "order"
    }


def check(events: list[RecordedEvent], order_ids: set[int], default_stock: int) -> dict[str, Any]:
    by_stream: dict[tuple[str, str], list[RecordedEvent]] = defaultdict(list)
    for e in events:
        by_stream[(e.envelope.aggregate_type, e.envelope.aggregate_id)].append(e)
    types = {k: [e.envelope.type for e in v] for k, v in by_stream.items()}
    outcome: Counter[str] = Counter()
    problems: list[str] = []
    sagas = saga_views(events)
    for oid in order_ids:
        state = sagas.get(oid)
        status = state.status if isinstance(state, Saga) else None
        saga = [status.value] if status is not None else []
        if status is SagaStatus.COMPLETED:
            saga.append("SagaCompleted")
        if status is SagaStatus.CANCELLED:
            saga.append("SagaCancelled")
        order = types.get(("order", str(oid)), [])
        if "SagaCompleted" in saga:
            outcome["completed"] += 1
            if order[-1] != "OrderCompleted":
                problems.append(f"order {oid}: saga completed, order {order}")
        elif "SagaCancelled" in saga:
            outcome["cancelled"] += 1
            if order[-1] != "OrderCancelled" or "OrderShipped" in order:
                problems.append(f"order {oid}: saga cancelled, order {order}")
        else:
            problems.append(f"order {oid}: saga not terminal: {saga}")
        payment = types.get(("payment", str(oid)), [])
        if payment.count("PaymentCharged") > 1 or payment.count("PaymentRefunded") > 1:
            problems.append(f"order {oid}: payment applied twice: {payment}")
        if "PaymentCharged" in payment and "PaymentRefunded" not in payment and "SagaCompleted" not in saga:
            problems.append(f"order {oid}: charge kept without completion: {payment}")
        shipping = types.get(("shipping", str(oid)), [])
        if shipping.count("ShipmentDispatched") > 1:
            problems.append(f"order {oid}: shipped twice")
    command_ids: Counter[tuple[str, str, str, str]] = Counter()
    for (agg, agg_id), stream in by_stream.items():
        if agg == "inventory":
            stock, held = 0, {}
            per_order: Counter[tuple[str, int]] = Counter()
            for e in stream:
                d = e.envelope.data
                match e.envelope.type:
                    case "StockSet":
                        stock = d["stock"]
                    case "StockReserved":
                        held[d["order_id"]] = d["quantity"]
                    case "StockReleased":
                        held.pop(d["order_id"], None)
                    case "StockCommitted":
                        held.pop(d["order_id"], None)
                        stock -= d["quantity"]
                if e.envelope.type != "StockSet":
                    per_order[(e.envelope.type, d["order_id"])] += 1
                if stock < 0 or stock - sum(held.values()) < 0:
                    problems.append(f"product {agg_id}: negative stock after seq {e.sequence}")
            problems += [f"product {agg_id}: {k} applied {n} times" for k, n in per_order.items() if n > 1]
            if held:
                problems.append(f"product {agg_id}: reservations never released or committed: {held}")
        for e in stream:
            cid = e.envelope.data.get("command_id")
            if cid is not None:  # one command may record several steps (a release: started, released)
                command_ids[(agg, agg_id, cid, e.envelope.type)] += 1
    for (agg, agg_id, cid, kind), n in command_ids.items():
        if n > 1:
            problems.append(f"{agg} {agg_id}: command {cid} applied {n} times ({kind})")
    reasons: Counter[str] = Counter(
        (state.reason or "").split(":")[0]
        for state in sagas.values()
        if isinstance(state, Saga) and state.reason
    )
    return {"outcome": dict(outcome), "problems": problems, "reasons": dict(reasons)}
