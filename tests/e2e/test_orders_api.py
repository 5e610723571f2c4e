"""The order API end to end over HTTP (real NATS + PostgreSQL; projector in the same loop)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from app.domain.order import ORDER
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.readmodel.queries import record_from_events
from e2e.conftest import System
from e2e.helpers import SEED, assert_problem

ORDERS = "/api/v1/orders"


async def test_seed_flow(system: System) -> None:
    c = system.client
    created = await c.post(ORDERS, json=SEED)
    assert created.status_code == 201
    assert created.json() == {"order_id": 1, "status": "created", "version": 1}
    assert created.headers["location"] == "/api/v1/orders/1"
    got = await c.get(f"{ORDERS}/1")
    assert got.status_code == 200
    body = got.json()
    assert body["order_id"] == 1
    assert body["user_id"] == 123
    assert body["amount"] == 99.99
    assert body["status"] == "created"
    assert body["version"] == 1
    assert body["items"] == []
    assert [e["type"] for e in body["events"]] == ["OrderCreated"]
    assert got.headers["etag"] == '"1"'
    full = await c.post(
        ORDERS, json={"user_id": 123, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}
    )
    assert full.json()["order_id"] == 2
    again = await c.get(f"{ORDERS}/2", params={"min_version": 1})
    assert again.headers["eda-consistency"] == "read-model"
    assert again.json()["items"] == [{"product_id": 1, "quantity": 2}]
    assert again.json()["amount"] == 199.98


async def test_200_concurrent_creates_all_readable(system: System) -> None:
    c = system.client
    responses = await asyncio.gather(*(c.post(ORDERS, json={"user_id": 5, "amount": i}) for i in range(200)))
    assert {r.status_code for r in responses} == {201}
    ids = sorted(r.json()["order_id"] for r in responses)
    assert ids == list(range(1, 201))  # no gaps, no duplicates
    reads = await asyncio.gather(*(c.get(f"{ORDERS}/{i}", params={"min_version": 1}) for i in ids))
    assert all(r.status_code == 200 for r in reads)
    seen: list[int] = []
    url: str | None = f"{ORDERS}?user_id=5&limit=64"
    while url:
        page = await c.get(url)
        assert page.status_code == 200
        seen += [o["order_id"] for o in page.json()["items"]]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        assert (page.json()["next_cursor"] is None) == (link is None)
    assert seen == ids
    assert sorted(o["amount"] for r in reads for o in [r.json()]) == sorted(float(i) for i in range(200))


async def _fold_matches_read_model(system: System, order_id: int) -> None:
    c = system.client
    history = (await c.get(f"{ORDERS}/{order_id}/events")).json()["events"]
    version = history[-1]["version"]
    model = (await c.get(f"{ORDERS}/{order_id}", params={"min_version": version})).json()
    assert model["version"] == version
    app_ctx = system.app.state.ctx
    fold = record_from_events(await app_ctx.repository(ORDER).history(order_id))
    assert fold is not None
    assert (model["status"], model["version"], model["amount"]) == (
        fold.status,
        fold.version,
        float(fold.amount),
    )
    assert [e["version"] for e in model["events"]] == list(range(1, version + 1))


async def test_concurrent_conflicting_commands(system: System) -> None:
    c = system.client
    order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
    results = await asyncio.gather(
        *(c.post(f"{ORDERS}/{order_id}/cancel", json={"reason": f"r{i}"}) for i in range(20))
    )
    assert {r.status_code for r in results} <= {200, 409}
    for r in results:
        if r.status_code == 409:
            assert_problem(r, 409)
    history = (await c.get(f"{ORDERS}/{order_id}/events")).json()["events"]
    assert [e["type"] for e in history] == ["OrderCreated", "OrderCancelled"]  # exactly one won
    await _fold_matches_read_model(system, order_id)
    # with If-Match: exactly one 200; the others lost the race (409) or saw the new version (412)
    other = (await c.post(ORDERS, json=SEED)).json()["order_id"]
    results = await asyncio.gather(
        *(c.post(f"{ORDERS}/{other}/cancel", headers={"If-Match": '"1"'}) for _ in range(20))
    )
    codes = [r.status_code for r in results]
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 409, 412}, codes
    await _fold_matches_read_model(system, other)


async def test_idempotent_replays(system: System) -> None:
    c = system.client
    key = {"Idempotency-Key": "k-1"}
    same = await asyncio.gather(*(c.post(ORDERS, json=SEED, headers=key) for _ in range(10)))
    assert {r.status_code for r in same} == {201}
    assert len({r.content for r in same}) == 1
    assert len({r.headers["location"] for r in same}) == 1
    later = await c.post(
        ORDERS, json={"amount": 99.99, "user_id": 123}, headers=key
    )  # same JSON, other order
    assert later.content == same[0].content
    assert later.headers["idempotent-replayed"] == "true"
    other = await c.post(ORDERS, json={"user_id": 123, "amount": 5}, headers=key)
    assert_problem(other, 422)
    order_id = same[0].json()["order_id"]
    assert len((await c.get(f"{ORDERS}/{order_id}/events")).json()["events"]) == 1
    assert (await c.get(f"{ORDERS}/{order_id}", params={"min_version": 1})).status_code == 200
    # only one order exists (the racing requests' ids, taken before the key's insert, are gaps)
    assert [o["order_id"] for o in (await c.get(ORDERS)).json()["items"]] == [order_id]


async def test_retry_after_crash_reuses_the_allocated_id(system: System) -> None:
    ctx = system.app.state.ctx
    c = system.client
    from app.api.idempotency import fingerprint

    body = {"user_id": 9, "amount": 10.0, "items": [], "currency": "USD"}
    print_ = fingerprint("POST", ORDERS, body)
    claim = await ctx.idempotency.claim("test-admin", "crashy", print_, ctx.ids.next)  # keys are per caller
    # the first attempt "crashed" after allocating its id; the retry completes it with that id
    retry = await c.post(ORDERS, json={"user_id": 9, "amount": 10}, headers={"Idempotency-Key": "crashy"})
    assert retry.status_code == 201
    assert retry.json()["order_id"] == claim.order_id
    nxt = await c.post(ORDERS, json=SEED)
    assert nxt.json()["order_id"] == claim.order_id + 1  # no gap


async def test_min_version_returns_new_state_right_after_a_command(system: System) -> None:
    c = system.client
    for _ in range(5):
        order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
        cancelled = await c.post(f"{ORDERS}/{order_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["version"] == 2
        got = await c.get(f"{ORDERS}/{order_id}", params={"min_version": 2})
        assert got.json()["status"] == "cancelled"
        assert got.json()["version"] == 2
        assert got.headers["eda-consistency"] == "read-model"


async def test_min_version_falls_back_to_event_store_when_projector_is_down(settings, tokens) -> None:  # type: ignore[no-untyped-def]
    from e2e.conftest import running_system

    slow = settings.model_copy(update={"min_version_wait_s": 0.2})
    async with running_system(slow, projector=False, token=tokens.admin()) as sys_:
        c = sys_.client
        order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
        got = await c.get(f"{ORDERS}/{order_id}", params={"min_version": 1})
        assert got.status_code == 200
        assert got.headers["eda-consistency"] == "event-store"
        assert got.json()["version"] == 1
        # a stopped projector keeps the pod ready (writes work, this read fell back): reported, not fatal
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["projection"] == {
            "ok": False,
            "detail": "no projector consumer yet",
            "affects_readiness": False,
        }


async def test_as_of_returns_past_states(system: System) -> None:
    c = system.client
    before = datetime.now(UTC) - timedelta(seconds=1)
    order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
    await asyncio.sleep(0.02)
    between = datetime.now(UTC)
    await asyncio.sleep(0.02)
    await c.post(f"{ORDERS}/{order_id}/cancel")
    then = await c.get(f"{ORDERS}/{order_id}", params={"as_of": between.isoformat()})
    assert then.status_code == 200
    assert then.json()["status"] == "created"
    assert then.json()["version"] == 1
    assert then.headers["eda-consistency"] == "event-store"
    now = await c.get(f"{ORDERS}/{order_id}", params={"as_of": datetime.now(UTC).isoformat()})
    assert now.json()["status"] == "cancelled"
    assert_problem(await c.get(f"{ORDERS}/{order_id}", params={"as_of": before.isoformat()}), 404)
    assert_problem(await c.get(f"{ORDERS}/{order_id}", params={"as_of": "2026-01-01T00:00:00"}), 422)


async def test_bad_input_gets_problem_json(system: System) -> None:
    c = system.client
    bad_bodies = [
        {"user_id": 0, "amount": 1},
        {"user_id": -1, "amount": 1},
        {"user_id": "123", "amount": 1},
        {"user_id": True, "amount": 1},
        {"user_id": 1, "amount": 1.001},
        {"user_id": 1, "amount": -1},
        {"user_id": 1, "amount": "1.00"},
        {"user_id": 1, "amount": 1, "extra": 1},
        {
            "user_id": 1,
            "amount": 1,
            "items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}],
        },
        {"user_id": 1, "amount": 1, "items": [{"product_id": 1, "quantity": 0}]},
        {"user_id": 2**70, "amount": 1},
        [1, 2],
    ]
    for body in bad_bodies:
        body_ = assert_problem(await c.post(ORDERS, json=body), 422)
        assert body_["errors"], body
    no_amount = assert_problem(await c.post(ORDERS, json={"user_id": 1}), 422)  # item-less: amount needed
    assert no_amount["type"].endswith("/amount-required")
    assert_problem(
        await c.post(ORDERS, content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    big = b'{"user_id": 1, "amount": 1, "pad": "' + b"x" * 70_000 + b'"}'
    assert_problem(await c.post(ORDERS, content=big, headers={"content-type": "application/json"}), 413)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1000

    assert_problem(await c.post(ORDERS, content=chunks(), headers={"content-type": "application/json"}), 413)
    assert_problem(await c.get(f"{ORDERS}/424242"), 404)
    assert_problem(await c.get(f"{ORDERS}/424242/events"), 404)
    assert_problem(await c.post(f"{ORDERS}/424242/cancel"), 404)
    assert_problem(await c.get(f"{ORDERS}/abc"), 422)
    assert_problem(await c.get(f"{ORDERS}/0"), 422)
    assert_problem(await c.get("/nope"), 404)
    assert_problem(await c.delete(ORDERS), 405)
    assert_problem(await c.get(ORDERS, params={"cursor": "!!!"}), 422)
    assert_problem(await c.get(ORDERS, params={"limit": 201}), 422)
    assert_problem(await c.get(ORDERS, params={"status": "weird"}), 422)
    order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
    assert_problem(await c.post(f"{ORDERS}/{order_id}/cancel", headers={"If-Match": '"7"'}), 412)
    assert_problem(await c.post(f"{ORDERS}/{order_id}/cancel", json={"reason": ""}), 422)
    ok = await c.post(f"{ORDERS}/{order_id}/cancel", headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    assert (await c.post(f"{ORDERS}/{order_id}/cancel")).status_code == 200  # idempotent repeat


async def test_health_and_metrics(system: System) -> None:
    c = system.client
    assert (await c.get("/livez")).status_code == 200
    await c.post(ORDERS, json=SEED)
    await c.get(f"{ORDERS}/1", params={"min_version": 1})
    for _ in range(100):
        ready = await c.get("/readyz")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"nats", "postgres", "projection"}
    metrics = (await c.get("/metrics")).text
    assert 'eda_commands_total{command="CreateOrder",outcome="ok"} 1.0' in metrics
    assert "eda_projection_lag_events" in metrics
    docs = await c.get("/openapi.json")
    assert "/api/v1/orders/{order_id}/cancel" in docs.json()["paths"]
    scheme = docs.json()["components"]["securitySchemes"]["bearer"]  # /docs can authorize
    assert scheme == scheme | {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert docs.json()["paths"]["/api/v1/orders"]["post"]["security"] == [{"bearer": []}]
    assert (await c.get("/openapi.json", headers={"Authorization": ""})).status_code == 401
    assert (await c.get("/docs")).status_code == 200


def test_codec_knows_order_events() -> None:
    assert EventCodec(all_event_types()).knows("OrderCreated")
