"""Per-role NATS users with the chart's least-privilege permissions (``app.deploy.natsauth``, the source of
``helm/eda/files/nats-permissions.json``) on a nats-server of its own:

- the user ``provision`` provisions everything (``eda provision``) and the whole seed flow runs with
  every role under its own user — the console's live feed included — with no permissions violation in
  the server log, the API holding ONE consumer for all its SSE connections;
- no runtime role may create, update, delete or purge ``EVENTS``: the ``max_age=1s`` attack (which
  emptied the stream when any role could ``STREAM.UPDATE`` it) fails for every role, 0 events lost;
  ``provision`` may not delete or purge either;
- one role cannot receive another's replies (each subscribes only to ``_INBOX_<role>.>``);
- a role cannot exceed its subjects (the api cannot publish payment events, a worker cannot consume
  another's commands, only the shipping worker reads order events, through its own durable only); no
  password reaches the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from app.deploy.natsauth import PROVISION, authorization_block, role_permissions
from app.dev.nats import NatsServer
from app.eventstore.jetstream import STREAM
from app.runtime.background import saga_role, workers_role
from app.runtime.bootstrap import provision_run
from app.runtime.roles import projector_role
from app.settings import Settings
from app.ui.live import Feed, LiveFeed
from app.workers.paid_orders import PAID_ORDERS_CONSUMER
from tests.support.eventually import eventually

ROLES = list(role_permissions())
RUNTIME_ROLES = [r for r in ROLES if r != PROVISION]
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


def role_settings(server: NatsServer, passwords: dict[str, str], role: str, dsn: str = "") -> Settings:
    values = {
        "nats_url": server.url,
        "nats_user": role,
        "nats_password": passwords[role],
        "health_port": 0,
        "auth_mode": "disabled",  # NATS permissions are the subject here, not tokens
        "default_price": "5.00",
    }
    return Settings(**values, **({"database_url": dsn} if dsn else {}))  # type: ignore[arg-type]


async def as_user(
    server: NatsServer, passwords: dict[str, str], role: str, errors: list[Exception] | None = None
) -> NATS:
    """A plain client of ``role`` with its inbox prefix; async errors (violations) go to ``errors``."""
    sink = errors if errors is not None else []

    async def on_error(exc: Exception) -> None:
        sink.append(exc)

    return await nats.connect(
        server.url,
        user=role,
        password=passwords[role],
        inbox_prefix=role_settings(server, passwords, role).inbox_prefix(),
        error_cb=on_error,
    )


def violations(server: NatsServer) -> list[str]:
    """Lines like ``... "$G/user:api" - Publish Violation - Subject "events.payment.1"``."""
    return [line for line in server.log_path.read_text().splitlines() if "Violation - " in line]


async def provisioned(server: NatsServer, passwords: dict[str, str]) -> list[str]:
    settings = role_settings(server, passwords, PROVISION)
    return [str(o) for o in await provision_run(settings, 1, timeout=30)]


async def test_wrong_password_is_refused(secured: tuple[NatsServer, dict[str, str]]) -> None:
    server, _ = secured
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(server.url, user="api", password="wrong", allow_reconnect=False, connect_timeout=2)


async def _live_events(live: LiveFeed, want: int, got: list[dict[str, object]]) -> None:
    """Read one console SSE stream (the route's byte stream, without HTTP: httpx's ASGI transport
    buffers whole responses) until ``want`` events arrived."""
    async for chunk in live.events(Feed.for_page(None, None), 0):
        for line in chunk.decode().splitlines():
            if line.startswith("data: ") and '"sequence"' in line:
                got.append(json.loads(line[6:]))
        if len(got) >= want:
            return


async def _ephemeral_consumers(admin: NATS) -> int:
    infos = await admin.jetstream().consumers_info(STREAM)
    return sum(1 for c in infos if not c.config.durable_name)


async def test_seed_flow_and_live_feed_with_per_role_users(
    secured: tuple[NatsServer, dict[str, str]], readmodel_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, passwords = secured
    assert "created stream EVENTS" in await provisioned(server, passwords)
    settings = {r: role_settings(server, passwords, r, readmodel_dsn) for r in RUNTIME_ROLES}
    app = create_app(settings["api"].model_copy(update={"ui_enabled": True}))
    admin = await as_user(server, passwords, "admin")
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
                feeds: list[list[dict[str, object]]] = [[], [], []]
                live = app.state.ctx.live
                readers = [asyncio.create_task(_live_events(live, 1, got)) for got in feeds]
                await asyncio.sleep(0.5)  # the feed sends new events only: let the readers connect
                assert await _ephemeral_consumers(admin) == 1  # one consumer for the three browsers
                assert (await api.put("/api/v1/inventory/1", json={"stock": 50})).status_code in (200, 201)
                r = await api.post("/api/v1/orders", json=ORDER)
                assert r.status_code == 201, r.text
                order_id = r.json()["order_id"]
                await asyncio.wait_for(asyncio.gather(*readers), 10)
                assert [got[0]["aggregate_id"] for got in feeds] == [str(order_id)] * 3

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
            await asyncio.gather(*tasks, return_exceptions=True)
            await admin.close()
    assert violations(server) == []
    logged = caplog.text + server.log_path.read_text()
    leaked = [role for role, pw in passwords.items() if pw in logged]
    assert leaked == [], f"passwords of {leaked} appear in the logs"


async def _attack(nc: NATS, *, reconfigure: bool = True) -> list[str]:
    """What a compromised role would try on ``EVENTS``; returns the attempts that were NOT denied.
    ``reconfigure=False``: only delete and purge (``provision`` may update streams: it is the identity
    that configures them, held by the provision Job only)."""
    js = nc.jetstream(timeout=1)
    config = (await js.stream_info(STREAM)).config
    attempts = {"delete": js.delete_stream(STREAM), "purge": js.purge_stream(STREAM)}
    if reconfigure:
        attempts["update max_age=1s"] = js.update_stream(config.evolve(max_age=1.0, duplicate_window=0.5))
        attempts["create"] = js.add_stream(name="EVIL", subjects=["evil.>"])
    outcomes = await asyncio.gather(*attempts.values(), return_exceptions=True)
    return [what for what, out in zip(attempts, outcomes, strict=True) if not isinstance(out, DENIED)]


async def test_no_role_can_alter_or_empty_the_event_stream(
    secured: tuple[NatsServer, dict[str, str]],
) -> None:
    server, passwords = secured
    await provisioned(server, passwords)
    admin = await as_user(server, passwords, "admin")
    clients = {role: await as_user(server, passwords, role) for role in ROLES}
    try:
        for i in range(10):
            await admin.jetstream().publish(f"events.order.{i}", b"{}")
        attacks = [_attack(clients[r], reconfigure=r != PROVISION) for r in ROLES]
        allowed = dict(zip(ROLES, await asyncio.gather(*attacks), strict=True))
        assert allowed == {role: [] for role in ROLES}
        await asyncio.sleep(2.5)  # what max_age=1s would have emptied by now
        info = await admin.jetstream().stream_info(STREAM)
        assert (info.state.messages, info.config.max_age) == (10, 0)
        assert {i.config.name for i in await admin.jetstream().streams_info()} >= {STREAM}
        assert "EVIL" not in {i.config.name for i in await admin.jetstream().streams_info()}
        logged = "\n".join(violations(server))
        for role in ROLES:
            for op in ("UPDATE", "DELETE", "PURGE") if role != PROVISION else ("DELETE", "PURGE"):
                assert (
                    f'"$G/user:{role}" - Publish Violation - Subject "$JS.API.STREAM.{op}.EVENTS"' in logged
                )
    finally:
        for nc in (admin, *clients.values()):
            await nc.close()


async def test_a_role_cannot_receive_another_roles_replies(
    secured: tuple[NatsServer, dict[str, str]],
) -> None:
    server, passwords = secured
    await provisioned(server, passwords)
    errors: list[Exception] = []
    spy = await as_user(server, passwords, "inventory", errors)
    api = await as_user(server, passwords, "api")
    stolen: list[str] = []
    try:

        async def steal(msg: nats.aio.msg.Msg) -> None:
            stolen.append(msg.subject)

        await spy.subscribe("_INBOX_api.>", cb=steal)
        await spy.subscribe("_INBOX.>", cb=steal)  # nats-py's default prefix is no way around it
        await spy.flush()
        ack = await api.jetstream(timeout=2).publish("events.order.1", b"{}")  # reply: a publish ack
        reply = await api.request("$JS.API.DIRECT.GET.EVENTS", b'{"seq": 1}', timeout=2)  # Direct Get
        assert (ack.seq, reply.headers and reply.headers.get("Nats-Sequence")) == (1, "1")
        await asyncio.sleep(0.3)
        assert stolen == []
        assert sum("permissions violation" in str(e).lower() for e in errors) == 2
        logged = "\n".join(violations(server))
        assert '"$G/user:inventory" - Subscription Violation - Subject "_INBOX_api.>"' in logged
    finally:
        await spy.close()
        await api.close()


async def test_roles_cannot_exceed_their_subjects(secured: tuple[NatsServer, dict[str, str]]) -> None:
    server, passwords = secured
    await provisioned(server, passwords)
    admin = await as_user(server, passwords, "admin")
    api = await as_user(server, passwords, "api")
    worker = await as_user(server, passwords, "inventory")
    shipping = await as_user(server, passwords, "shipping")
    try:
        with pytest.raises(DENIED):
            await api.jetstream(timeout=1).publish("events.payment.1", b"{}")
        with pytest.raises(DENIED):
            await worker.jetstream(timeout=1).publish("events.order.1", b"{}")
        with pytest.raises(DENIED):
            await worker.request("$JS.API.CONSUMER.MSG.NEXT.COMMANDS.worker-payment", b"{}", timeout=1)
        with pytest.raises(DENIED):  # a durable of its own on EVENTS: only ephemeral ones (live feed)
            await api.jetstream(timeout=1).add_consumer(STREAM, durable_name="evil")
        # the shipping worker reads order events through its own durable only; no other worker may
        for client, durable in ((shipping, "saga-orchestrator"), (worker, PAID_ORDERS_CONSUMER)):
            with pytest.raises(DENIED):
                await client.request(f"$JS.API.CONSUMER.MSG.NEXT.EVENTS.{durable}", b"{}", timeout=1)
        with pytest.raises(DENIED):
            await shipping.jetstream(timeout=1).add_consumer(STREAM, durable_name="evil")
        info = await shipping.jetstream(timeout=2).consumer_info(STREAM, PAID_ORDERS_CONSUMER)
        assert info.config.filter_subject == "events.order.>"
        await asyncio.sleep(0.3)
        info = await admin.jetstream().stream_info(STREAM)
        assert info.state.messages == 0  # nothing got in
        assert (await api.jetstream(timeout=2).publish("events.order.1", b"{}")).seq == 1
        logged = "\n".join(violations(server))
        for subject in (
            "events.payment.1",
            "events.order.1",
            "$JS.API.CONSUMER.MSG.NEXT.COMMANDS.worker-payment",
            "$JS.API.CONSUMER.DURABLE.CREATE.EVENTS.evil",
            "$JS.API.CONSUMER.MSG.NEXT.EVENTS.saga-orchestrator",
            f"$JS.API.CONSUMER.MSG.NEXT.EVENTS.{PAID_ORDERS_CONSUMER}",
        ):
            assert f'Publish Violation - Subject "{subject}"' in logged, subject
        assert (
            '"$G/user:shipping" - Publish Violation - Subject "$JS.API.CONSUMER.DURABLE.CREATE.EVENTS.evil"'
            in logged
        )
    finally:
        with contextlib.suppress(Exception):
            for nc in (admin, api, worker, shipping):
                await nc.close()


async def test_operator_user_backs_up_but_cannot_restore(secured: tuple[NatsServer, dict[str, str]]) -> None:
    """A snapshot acknowledges every chunk (1 KiB chunks, 1 KiB window: one ack per chunk); a restore is
    for an administrator."""
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
