"""Per-role NATS users with least-privilege permissions (``app.deploy.natsauth``) on a nats-server of its own:
the whole seed flow works with every role under its own user and the server logs no permissions
violation; a role cannot exceed its permissions (the api cannot delete the stream nor publish payment
events; a worker cannot publish order events); no password reaches the logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from nats.aio.client import Client as NATS

from app.api.main import create_app
from app.backup import snapshotapi
from app.deploy.natsauth import authorization_block, role_permissions
from app.dev.nats import NatsServer
from app.runtime.background import saga_role, workers_role
from app.runtime.roles import projector_role
from app.settings import Settings
from tests.support.eventually import eventually

ROLES = list(role_permissions())
DENIED = (nats.errors.TimeoutError, nats.errors.NoRespondersError)  # the server drops a denied publish
ORDER = {"user_id": 7, "items": [{"product_id": 1, "quantity": 2}], "amount": 10.0}


@pytest.fixture
async def secured(short_tmp: Path) -> AsyncIterator[tuple[NatsServer, dict[str, str]]]:
    passwords = {role: secrets.token_urlsafe(16) for role in [*ROLES, "admin"]}
    config = authorization_block(passwords, extra_users={"admin": passwords["admin"]})
    server = NatsServer(short_tmp / "nats", extra_config=config)
    await server.start()
    try:
        yield server, passwords
    finally:
        await server.stop()


def role_settings(server: NatsServer, passwords: dict[str, str], role: str, dsn: str) -> Settings:
    return Settings(
        nats_url=server.url,
        nats_user=role,
        nats_password=passwords[role],  # type: ignore[arg-type]
        database_url=dsn,  # type: ignore[arg-type]
        health_port=0,
        auth_mode="disabled",  # NATS permissions are the subject here, not tokens
        default_price="5.00",
    )


async def as_user(server: NatsServer, passwords: dict[str, str], role: str) -> NATS:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(server.url, user=role, password=passwords[role], error_cb=on_error)


def violations(server: NatsServer) -> list[str]:
    """Lines like ``... "$G/user:api" - Publish Violation - Subject "events.payment.1"``."""
    return [line for line in server.log_path.read_text().splitlines() if "Violation - " in line]


async def test_wrong_password_is_refused(secured: tuple[NatsServer, dict[str, str]]) -> None:
    server, _ = secured
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(server.url, user="api", password="wrong", allow_reconnect=False, connect_timeout=2)


async def test_seed_flow_with_per_role_users(
    secured: tuple[NatsServer, dict[str, str]], fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, passwords = secured
    settings = {r: role_settings(server, passwords, r, fresh_db) for r in ROLES}
    app = create_app(settings["api"])
    async with app.router.lifespan_context(app):
        tasks = [
            asyncio.create_task(projector_role(settings["projector"], health=False)),
            asyncio.create_task(saga_role(settings["saga"])),
            *(
                asyncio.create_task(workers_role(settings[w], (w,)))
                for w in ("inventory", "payment", "shipping")
            ),  # type: ignore[arg-type]
        ]
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                assert (await api.put("/api/v1/inventory/1", json={"stock": 50})).status_code in (
                    200,
                    201,
                    204,
                )
                r = await api.post("/api/v1/orders", json=ORDER)
                assert r.status_code == 201, r.text
                order_id = r.json()["order_id"]

                async def completed() -> bool:
                    assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
                    body = (await api.get(f"/api/v1/orders/{order_id}")).json()
                    return bool(body.get("status") == "completed")

                await eventually(completed, timeout=30, interval=0.1, what=f"order {order_id} completed")

                async def saga_completed() -> bool:  # after the order: the stock commit comes last
                    saga = (await api.get(f"/api/v1/orders/{order_id}/saga")).json()
                    return bool(saga["state"] == "completed")

                await eventually(saga_completed, timeout=30, interval=0.1, what=f"saga {order_id} completed")
                assert (await api.get("/api/v1/admin/dead-letters")).status_code == 200
                assert (await api.get("/readyz")).status_code == 200
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    assert violations(server) == []
    logged = caplog.text + server.log_path.read_text()
    leaked = [role for role, pw in passwords.items() if pw in logged]
    assert leaked == [], f"passwords of {leaked} appear in the logs"


async def test_roles_cannot_exceed_their_permissions(secured: tuple[NatsServer, dict[str, str]]) -> None:
    server, passwords = secured
    admin = await as_user(server, passwords, "admin")
    api = await as_user(server, passwords, "api")
    worker = await as_user(server, passwords, "inventory")
    try:
        js = admin.jetstream()
        await js.add_stream(name="EVENTS", subjects=["events.>"])
        # the api cannot delete the stream; a worker cannot consume another worker's commands
        with pytest.raises(DENIED):
            await api.request("$JS.API.STREAM.DELETE.EVENTS", b"", timeout=1)
        with pytest.raises(DENIED):
            await api.jetstream(timeout=1).publish("events.payment.1", b"{}")
        with pytest.raises(DENIED):
            await worker.jetstream(timeout=1).publish("events.order.1", b"{}")
        with pytest.raises(DENIED):
            await worker.request("$JS.API.CONSUMER.MSG.NEXT.COMMANDS.worker-payment", b"{}", timeout=1)
        await asyncio.sleep(0.5)
        info = await js.stream_info("EVENTS")
        assert info.state.messages == 0  # nothing got in
        # the api may publish what it must
        assert (await api.jetstream(timeout=2).publish("events.order.1", b"{}")).seq == 1
        logged = "\n".join(violations(server))
        for subject in (
            "$JS.API.STREAM.DELETE.EVENTS",
            "events.payment.1",
            "events.order.1",
            "$JS.API.CONSUMER.MSG.NEXT.COMMANDS.worker-payment",
        ):
            assert f'Publish Violation - Subject "{subject}"' in logged, subject
    finally:
        for nc in (admin, api, worker):
            await nc.close()


async def test_operator_user_backs_up_but_cannot_restore(secured: tuple[NatsServer, dict[str, str]]) -> None:
    """A snapshot acknowledges every chunk (1 KiB chunks, 1 KiB window: one ack per chunk); a restore is
    for a provisioning identity."""
    server, passwords = secured
    admin = await as_user(server, passwords, "admin")
    operator = await as_user(server, passwords, "operator")
    try:
        js = admin.jetstream()
        await js.add_stream(name="EVENTS", subjects=["events.>"])
        for i in range(20):
            await js.publish(f"events.order.{i}", os.urandom(1000))  # incompressible: ~20 chunks
        received: list[bytes] = []

        async def sink(data: bytes) -> None:
            received.append(data)

        info = await snapshotapi.snapshot(operator, "EVENTS", sink, chunk_bytes=1024, window_bytes=1024)
        assert info.state["messages"] == 20
        assert len(received) > 10
        config = {"name": "RESTORED", "subjects": ["restored.>"], "storage": "file"}
        with pytest.raises(DENIED):
            await operator.request(
                "$JS.API.STREAM.RESTORE.RESTORED", orjson.dumps({"config": config}), timeout=1
            )
        await asyncio.sleep(0.2)
        logged = violations(server)
        assert [v for v in logged if "SNAPSHOT" in v] == []
        assert any('Subject "$JS.API.STREAM.RESTORE.RESTORED"' in v for v in logged)
    finally:
        for nc in (admin, operator):
            await nc.close()
