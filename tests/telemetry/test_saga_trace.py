"""One trace from the HTTP request to ``OrderCompleted`` across separate processes, exported over
OTLP/HTTP: parent/child structure, span kinds, messaging attributes; and a declined payment shows the
failing step with ERROR status."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.support.eventually import eventually
from tests.telemetry.conftest import DECLINE_ABOVE, Traced
from tests.telemetry.receiver import STATUS_ERROR, Span, render_tree

RENDER_TO = os.environ.get("EDA_TRACE_RENDER")  # set to a path to write the ASCII tree (docs)


async def _trace_with(traced: Traced, order_id: int, final_event: str, timeout: float = 20.0) -> list[Span]:
    """The trace of ``order_id``'s POST once the append of ``final_event`` has been exported."""
    oid = str(order_id)

    def complete() -> str | None:
        spans = traced.receiver.spans
        post = [
            s
            for s in spans
            if s.kind == "SERVER" and s.name == "POST /api/v1/orders" and s.attributes.get("order.id") == oid
        ]
        final = [
            s
            for s in spans
            if s.kind == "PRODUCER"
            and s.attributes.get("order.id") == oid
            and final_event in (s.attributes.get("eda.event.types") or [])
        ]
        return post[0].trace_id if post and final else None

    trace_id = await eventually(complete, timeout=timeout, interval=0.1, what=f"order {order_id}'s trace")
    await asyncio.sleep(1.0)  # the rest of the batch (every process exports every 200 ms): no signal
    return traced.receiver.trace(trace_id)


def _check_structure(spans: list[Span], order_id: int) -> dict[str, Span]:
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if not s.parent_id]
    assert len(roots) == 1, [(s.name, s.service) for s in roots]
    root = roots[0]
    assert (root.kind, root.name, root.service) == ("SERVER", "POST /api/v1/orders", "eda-api")
    for span in spans:  # every span reaches the HTTP request through its parents
        seen, cur = 0, span
        while cur.parent_id:
            assert cur.parent_id in by_id, f"{span.name} ({span.service}): parent {cur.parent_id} missing"
            cur = by_id[cur.parent_id]
            seen += 1
            assert seen < 100
        assert cur is root
    for span in spans:
        if span.kind in ("PRODUCER", "CONSUMER"):
            a = span.attributes
            assert a["messaging.system"] == "nats", span
            destination = a["messaging.destination.name"]
            # a product's stock stream is named by the product; everything else by the order
            assert destination.startswith("events.inventory.") or destination.endswith(f".{order_id}"), span
            assert a["order.id"] == str(order_id), span
            assert (
                span.name
                == f"{'send' if span.kind == 'PRODUCER' else 'process'} "
                + a["messaging.destination.template"]
            )
        if span.kind == "CONSUMER":  # a consumer is the child of the message's producer
            parent = by_id[span.parent_id]
            assert parent.kind == "PRODUCER", (span.name, parent.name)
            if span.name.startswith("process cmd."):
                assert (
                    parent.attributes["messaging.destination.name"]
                    == span.attributes["messaging.destination.name"]
                )
                assert parent.attributes["messaging.message.id"] == span.attributes["messaging.message.id"]
    return by_id


def _names(spans: list[Span], kind: str, service: str | None = None) -> set[str]:
    return {s.name for s in spans if s.kind == kind and (service is None or s.service == service)}


async def test_one_trace_from_http_post_to_order_completed(traced: Traced) -> None:
    order_id = await traced.create(99.99)
    assert await traced.status(order_id, {"completed"}) == "completed"
    spans = await _trace_with(traced, order_id, "OrderCompleted")
    tree = render_tree(spans)
    if RENDER_TO:
        await asyncio.to_thread(Path(RENDER_TO).write_text, tree + "\n")
    _check_structure(spans, order_id)
    created = [s for s in spans if "OrderCreated" in (s.attributes.get("eda.event.types") or [])]
    assert [s.service for s in created] == ["eda-api"], tree
    assert created[0].name == "send events.order.{id}"
    completed = [s for s in spans if "OrderCompleted" in (s.attributes.get("eda.event.types") or [])]
    assert [s.service for s in completed] == ["eda-saga"], tree
    saga = _names(spans, "CONSUMER", "eda-saga")
    for fact in ("order", "reservation", "payment", "shipping"):
        assert f"process events.{fact}.{{id}}" in saga, tree
    for worker, kinds in (
        ("inventory", {"reserve", "commit"}),
        ("payment", {"charge"}),
        ("shipping", {"ship"}),
    ):
        handled = [s for s in spans if s.kind == "CONSUMER" and s.service == f"eda-worker-{worker}"]
        assert {s.attributes["eda.command.kind"] for s in handled} >= kinds, tree
        # the shipping worker ships on the saga's OrderPaid itself (and on a `ship` command, if any)
        names = {f"process cmd.{worker}.{{id}}"} | (
            {"process events.order.{id}"} if worker == "shipping" else set()
        )
        assert {s.name for s in handled} <= names, tree
        assert worker != "shipping" or "process events.order.{id}" in {s.name for s in handled}, tree
        sent = [s for s in spans if s.kind == "PRODUCER" and s.name == f"send cmd.{worker}.{{id}}"]
        assert bool(sent) == (worker != "shipping"), tree  # the saga sends no ship command (issue 16)
        assert all(s.service == "eda-saga" for s in sent)
        # the worker's events are appended inside its process span (a second delivery of the same
        # step, e.g. the `ship` command after the OrderPaid shipped, appends nothing: "noop")
        for span in handled:
            appended = any(c.parent_id == span.span_id and c.kind == "PRODUCER" for c in spans)
            assert appended != (span.attributes["eda.command.outcome"] == "noop"), tree
        assert any(s.attributes["eda.command.outcome"] == "ok" for s in handled), tree
    assert not [s for s in spans if s.status == STATUS_ERROR], tree
    # the client's polls of the order are traces of their own, tagged with the order they read
    reads = [
        s for s in traced.receiver.spans if s.kind == "SERVER" and s.name.startswith("GET /api/v1/orders/")
    ]
    assert reads
    assert {s.attributes.get("order.id") for s in reads} >= {str(order_id)}


async def test_declined_payment_shows_the_failing_step_as_error(traced: Traced) -> None:
    order_id = await traced.create(DECLINE_ABOVE + 500.0)
    assert await traced.status(order_id, {"cancelled"}) == "cancelled"
    spans = await _trace_with(traced, order_id, "OrderCancelled")
    tree = render_tree(spans)
    if RENDER_TO:
        await asyncio.to_thread(Path(RENDER_TO + ".declined").write_text, tree + "\n")
    _check_structure(spans, order_id)
    charge = [s for s in spans if s.service == "eda-worker-payment" and s.kind == "CONSUMER"]
    assert charge, tree
    assert charge[0].status == STATUS_ERROR, tree
    assert "PaymentDeclined" in charge[0].status_message
    saga_failed = [
        s
        for s in spans
        if s.service == "eda-saga" and s.name == "process events.payment.{id}" and s.status == STATUS_ERROR
    ]
    assert saga_failed, tree
    assert "charge_payment failed" in saga_failed[0].status_message, tree
    # compensation (release the reservation) is in the same trace
    released = [
        s
        for s in spans
        if s.service == "eda-worker-inventory" and s.attributes.get("eda.command.kind") == "release"
    ]
    assert released, tree
