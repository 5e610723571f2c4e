"""``eda status`` (the real CLI, as a process) against a running system — the API and projector in
this loop, the saga and workers as in-process roles on the session's NATS: its ``--json`` document
validates against the published schema and its numbers match what the API and NATS say: streams and
consumers, projection checkpoint, sagas completed/cancelled and in flight (the payment worker is
stopped, so new sagas wait in ``charge_payment``), dead letters and recorded runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from importlib import resources
from typing import Any

import jsonschema
import nats
import pytest
from idp_support import Tokens
from pydantic import SecretStr

from app.readmodel import runs
from app.readmodel.db import create_pool
from app.runtime.background import saga_role, workers_role
from app.settings import Settings
from e2e.conftest import EDA, role_env, running_system

SCHEMA = json.loads(resources.files("app.ops").joinpath("status.schema.json").read_text())


async def _status(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = role_env(settings, COLUMNS="200")  # rich wraps to the terminal's width
    return await asyncio.to_thread(
        subprocess.run, [EDA, "status", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def _saga_state(client: Any, order_id: int, want: set[str]) -> dict[str, Any]:
    for _ in range(200):
        resp = await client.get(f"/api/v1/orders/{order_id}/saga")
        if resp.status_code == 200 and resp.json()["state"] in want:
            body: dict[str, Any] = resp.json()
            if want <= {"running"} or all(s["status"] != "running" for s in body["steps"]):
                return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"saga {order_id} never {want}")


async def _count(client: Any, status: str) -> int:
    resp = await client.get("/api/v1/orders", params={"status": status, "limit": 100})
    return len(resp.json()["items"])


@pytest.fixture
def settings(nats_url: str, js_clean: None, readmodel_dsn: str, auth_settings: dict[str, str]) -> Settings:
    """Provisioned (js_clean) and migrated (readmodel_dsn), as the chart's Jobs leave a system."""
    return Settings(
        nats_url=nats_url,
        database_url=SecretStr(readmodel_dsn),
        payment_decline_above=1000,  # 99.99 a unit: 11 units are declined
        saga_step_timeout_s=120,
        default_stock=1000,
        **auth_settings,  # type: ignore[arg-type]
    )


def _order(quantity: int) -> dict[str, Any]:
    return {"user_id": 9, "items": [{"product_id": 1, "quantity": quantity}]}


async def test_status_json_matches_the_api_and_nats(settings: Settings, tokens: Tokens) -> None:
    async with running_system(settings, token=tokens.admin()) as system:
        client = system.client
        roles = [asyncio.create_task(saga_role(settings))]
        payment = asyncio.create_task(workers_role(settings, ("payment",)))
        roles.append(asyncio.create_task(workers_role(settings, ("inventory", "shipping"))))
        try:
            done = [(await client.post("/api/v1/orders", json=_order(q))).json() for q in (1, 2, 11)]
            for o in done:
                await _saga_state(client, o["order_id"], {"completed", "cancelled"})
            payment.cancel()  # new sagas now wait in charge_payment
            with contextlib.suppress(asyncio.CancelledError):
                await payment
            waiting = [(await client.post("/api/v1/orders", json=_order(3))).json() for _ in range(2)]
            for o in waiting:
                await _saga_state(client, o["order_id"], {"running"})
            nc = await nats.connect(settings.nats_url)
            await nc.jetstream().publish("dlq.test", b"poison", headers={"Eda-Error": "boom"})
            pool = await create_pool(settings.database_url.get_secret_value(), size=1)
            await runs.record_start(pool, "cli-rebuild-t", "rebuild", "orders", runs.RunSource())
            await runs.record_finish(pool, "cli-rebuild-t", "succeeded")
            for _ in range(100):  # the projector caught up with the waiting orders
                if await _count(client, "created") == 2:
                    break
                await asyncio.sleep(0.05)

            result = await _status(settings, "--json")
            assert result.returncode == 0, result.stderr
            doc = json.loads(result.stdout)
            jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
            js = nc.jetstream()
            events = await js.stream_info("EVENTS")
            stream = next(s for s in doc["streams"] if s["name"] == "EVENTS")
            assert (stream["messages"], stream["bytes"]) == (events.state.messages, events.state.bytes)
            assert (stream["replicas"], stream["replicas_current"]) == (1, 1)
            pay = await js.consumer_info("COMMANDS", "worker-payment")
            consumer = next(c for c in doc["consumers"] if c["name"] == "worker-payment")
            assert consumer["pending"] + consumer["ack_pending"] == pay.num_pending + pay.num_ack_pending >= 2
            [projection] = doc["projections"]
            checkpoint = await pool.fetchval("SELECT sequence FROM readmodel.projection_checkpoints")
            assert (projection["projection"], projection["checkpoint"]) == ("orders", checkpoint)
            sagas = doc["sagas"]
            assert sagas["in_flight"] == 2
            assert sagas["by_state"] == {
                "running": 2,
                "compensating": 0,
                "completed": await _count(client, "completed"),
                "cancelled": await _count(client, "cancelled"),
            }
            assert sagas["by_state"]["completed"] == 2
            assert sagas["overdue"] == 0
            oldest = sagas["oldest_running"]
            first = await _saga_state(client, waiting[0]["order_id"], {"running"})
            charge = next(s for s in first["steps"] if s["name"] == "charge_payment")
            assert (oldest["order_id"], oldest["step"]) == (waiting[0]["order_id"], "charge_payment")
            assert oldest["started_at"][:19] == charge["started_at"][:19]
            dead = (await client.get("/api/v1/admin/dead-letters")).json()
            assert doc["dead_letters"]["messages"] == dead["count"] == 1
            assert [r["id"] for r in doc["runs"]["finished"]] == ["cli-rebuild-t"]
            assert doc["errors"] == []

            table = await _status(settings)
            assert table.returncode == 0, table.stderr
            for text in (
                "Streams",
                "EVENTS",
                "worker-payment",
                "in flight 2",
                "charge_payment",
                "cli-rebuild-t",
            ):
                assert text in table.stdout, table.stdout
            await pool.close()
            await nc.close()
        finally:
            for task in roles:
                task.cancel()
            await asyncio.gather(*roles, return_exceptions=True)
