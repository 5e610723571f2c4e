"""E2E over HTTP: the API app (real lifespan) + projector + saga + workers on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from idp_support import Tokens

from app.eventstore.envelope import StreamId
from app.settings import Settings
from tests.e2e.conftest import System, running_system
from tests.saga.conftest import StartSystem
from tests.support.eventually import eventually


@dataclass(frozen=True)
class Auth:
    """The session provider's settings and a token with every scope."""

    settings: dict[str, str]
    token: str


@pytest.fixture
def auth(auth_settings: dict[str, str], tokens: Tokens) -> Auth:
    return Auth(auth_settings, tokens.admin())


@contextlib.asynccontextmanager
async def whole_system(
    nats_url: str, database_url: str, start_system: StartSystem, auth: Auth, **overrides: Any
) -> AsyncIterator[System]:
    values: dict[str, Any] = {"nats_url": nats_url, "database_url": database_url, "default_stock": 1000}
    values |= auth.settings | overrides
    await start_system(**values)
    async with running_system(Settings(**values), token=auth.token) as system:
        yield system


async def _get(system: System, path: str) -> dict[str, Any] | None:
    resp = await system.client.get(path)
    return resp.json() if resp.status_code == 200 else None  # type: ignore[no-any-return]


async def _until(system: System, order_id: int, status: str, timeout: float = 5.0) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = await _get(system, f"/api/v1/orders/{order_id}")
        return body if body is not None and body["status"] == status else None

    return await eventually(reached, timeout=timeout, what=f"order {order_id} {status}")


async def _saga(
    system: System, order_id: int, state: str, timeout: float = 10.0, *, step: str | None = None
) -> dict[str, Any]:
    """Wait for the saga to be in ``state`` (and, if given, to have started ``step``)."""

    async def reached() -> dict[str, Any] | None:
        body = await _get(system, f"/api/v1/orders/{order_id}/saga")
        if body is None or body["state"] != state:
            return None
        return body if step is None or step in {s["name"] for s in body["steps"]} else None

    return await eventually(reached, timeout=timeout, what=f"saga {order_id} {state}")


async def _create(system: System, body: dict[str, Any]) -> int:
    resp = await system.client.post("/api/v1/orders", json=body)
    assert resp.status_code == 201, resp.text
    order_id: int = resp.json()["order_id"]
    return order_id


async def test_seed_order_completes_within_seconds(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth) as system:
        started = asyncio.get_running_loop().time()
        order_id = await _create(system, {"user_id": 123, "amount": 99.99})
        assert order_id == 1
        body = await _until(system, 1, "completed", timeout=3.0)
        assert asyncio.get_running_loop().time() - started < 3.0
        assert [e["type"] for e in body["events"]] == [
            "OrderCreated",
            "OrderPaid",
            "OrderShipped",
            "OrderCompleted",
        ]
        saga = await _saga(system, 1, "completed")
        assert [s["name"] for s in saga["steps"]] == ["charge_payment", "ship_order"]
        assert all(s["status"] == "succeeded" and s["finished_at"] for s in saga["steps"])
        assert (await system.client.get("/api/v1/orders/999/saga")).status_code == 404


async def test_order_with_items_completes_and_takes_stock(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth) as system:
        put = await system.client.put("/api/v1/inventory/1", json={"stock": 10})
        assert put.json() == {"product_id": 1, "stock": 10, "reserved": 0, "available": 10, "version": 1}
        order_id = await _create(system, {"user_id": 1, "items": [{"product_id": 1, "quantity": 2}]})
        await _until(system, order_id, "completed")
        saga = await _saga(system, order_id, "completed")
        assert saga["steps"][0]["name"] == "reserve_inventory"
        for _ in range(100):
            stock = (await system.client.get("/api/v1/inventory/1")).json()
            if stock["stock"] == 8:
                break
            await asyncio.sleep(0.05)
        assert stock["stock"] == 8
        assert stock["available"] == 8
        assert (await system.client.get("/api/v1/inventory/2")).json()["stock"] == 1000  # default stock


async def test_the_saga_charges_the_catalog_total(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth) as system:
        assert (await system.client.put("/api/v1/catalog/9", json={"price": 12.34})).status_code == 200
        items = [{"product_id": 9, "quantity": 3}, {"product_id": 10, "quantity": 1}]  # 10: default 99.99
        refused = await system.client.post("/api/v1/orders", json={"user_id": 1, "items": items, "amount": 1})
        assert refused.status_code == 422
        order_id = await _create(system, {"user_id": 1, "items": items})
        await _until(system, order_id, "completed")
        store = system.app.state.ctx.store
        charged = [e.event for e in (await store.load(StreamId("payment", str(order_id)))).events]
        assert [type(e).__name__ for e in charged] == ["PaymentCharged"]
        assert str(charged[0].amount) == "137.01"  # 3 x 12.34 + 99.99: the server's total


async def test_declined_payment_cancels_and_restores_stock(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(
        nats_url, readmodel_dsn, start_system, auth, payment_decline_above=100.0
    ) as system:
        await system.client.put("/api/v1/inventory/5", json={"stock": 10})
        order_id = await _create(
            system,
            {
                "user_id": 1,
                "items": [{"product_id": 5, "quantity": 3}],
            },  # 3 x the default 99.99: above the limit
        )
        await _until(system, order_id, "cancelled")
        saga = await _saga(system, order_id, "cancelled")
        names = {s["name"]: s for s in saga["steps"]}
        assert names["charge_payment"]["status"] == "failed"
        assert names["release_inventory"]["compensation"] is True
        stock = (await system.client.get("/api/v1/inventory/5")).json()
        assert (stock["stock"], stock["reserved"], stock["available"]) == (10, 0, 10)


async def test_insufficient_stock_cancels_without_charge(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth) as system:
        await system.client.put("/api/v1/inventory/6", json={"stock": 1})
        order_id = await _create(system, {"user_id": 1, "items": [{"product_id": 6, "quantity": 2}]})
        await _until(system, order_id, "cancelled")
        saga = await _saga(system, order_id, "cancelled")
        assert [s["name"] for s in saga["steps"]] == ["reserve_inventory"]
        assert "insufficient" in saga["reason"]
        stock = (await system.client.get("/api/v1/inventory/6")).json()
        assert stock["available"] == 1


async def test_payment_timeout_compensates_and_cancels(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(
        nats_url, readmodel_dsn, start_system, auth, saga_step_timeout_s=1.0, payment_fault_delay_s=3.0
    ) as system:
        await system.client.put("/api/v1/inventory/7", json={"stock": 4})
        order_id = await _create(system, {"user_id": 1, "items": [{"product_id": 7, "quantity": 4}]})
        await _until(system, order_id, "cancelled", timeout=6.0)
        saga = await _saga(system, order_id, "cancelled", timeout=10.0)
        names = {s["name"]: s for s in saga["steps"]}
        assert names["charge_payment"]["status"] == "timed_out"
        assert names["refund_payment"]["status"] == "succeeded"
        assert names["release_inventory"]["status"] == "succeeded"
        assert (await system.client.get("/api/v1/inventory/7")).json()["available"] == 4


async def test_user_cancel_during_saga_compensates(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth, payment_fault_delay_s=1.0) as system:
        await system.client.put("/api/v1/inventory/8", json={"stock": 3})
        order_id = await _create(system, {"user_id": 1, "items": [{"product_id": 8, "quantity": 3}]})
        # cancel while the (slow) charge is in flight: the reservation and the charge both compensate
        await _saga(system, order_id, "running", step="charge_payment")
        resp = await system.client.post(
            f"/api/v1/orders/{order_id}/cancel", json={"reason": "changed my mind"}
        )
        assert resp.status_code == 200, resp.text
        saga = await _saga(system, order_id, "cancelled")
        assert {s["name"] for s in saga["steps"] if s["compensation"]} >= {
            "release_inventory",
            "refund_payment",
        }
        await asyncio.sleep(1.5)  # the slow charge lands: it must be refunded or voided, never kept
        body = await _until(system, order_id, "cancelled")
        assert "OrderPaid" not in [e["type"] for e in body["events"]]
        assert (await system.client.get("/api/v1/inventory/8")).json()["available"] == 3


@pytest.mark.parametrize("body", [{"stock": -1}, {"stock": "x"}, {}])
async def test_put_inventory_rejects_bad_input(
    nats_url: str, readmodel_dsn: str, start_system: StartSystem, auth: Auth, body: dict[str, Any]
) -> None:
    async with whole_system(nats_url, readmodel_dsn, start_system, auth) as system:
        resp = await system.client.put("/api/v1/inventory/1", json=body)
        assert resp.status_code == 422
        assert resp.headers["content-type"].startswith("application/problem+json")
