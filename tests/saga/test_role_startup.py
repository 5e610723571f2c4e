"""A role that starts while NATS or JetStream is unavailable must still consume once it is back.

Regression for the saga-on-cluster chaos test (``tests/chaos/test_saga_kill.py``): a worker started
while the cluster had no JetStream quorum got ``nats: timeout`` on ``$JS.API`` (stream/consumer
creation) and died, so its commands were never handled and the sagas waiting for it never ended.
The no-quorum case failed before ``app.process.role.retry_start`` (the role's task ended with
``TimeoutError``); the server-not-yet-up case already passed (nats-py retries the first connect) and
guards the connect half of the start-up. Roles create nothing: a worker started before ``eda
provision`` ran waits, logging what is missing and what to run, and consumes once provisioned.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from app.deploy.provision import provision
from app.dev.cluster import running_cluster
from app.dev.nats import NatsServer
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.process.role import retry_start
from app.runtime.background import workers_role
from app.settings import Settings
from app.workers.commands import Ship, publish_command

pytestmark = pytest.mark.timeout(120)


async def _ship_and_wait(nc: NATS, replicas: int, order_id: int, timeout: float = 40.0) -> list[str]:
    """Provision (what the chart's Job does), send a ``ship`` command (retried until ``COMMANDS`` accepts
    it) and wait for the worker's event."""
    await retry_start("test provision", lambda: provision(nc, replicas))
    codec = EventCodec(all_event_types())
    store = await retry_start("test store", lambda: JetStreamEventStore.open(nc, codec))
    cmd = Ship(command_id=f"{order_id}:ship_order:1", order_id=order_id, user_id=1)
    deadline = asyncio.get_running_loop().time() + timeout
    sent = False
    while asyncio.get_running_loop().time() < deadline:
        if not sent:
            try:
                await publish_command(nc.jetstream(timeout=2), "shipping", cmd, Metadata(correlation_id="t"))
                sent = True
            except Exception:  # no leader yet
                pass
        try:
            loaded = await store.load(StreamId("shipping", str(order_id)))
        except Exception:  # the new stream's replicas not answering yet
            loaded = None
        if loaded is not None and loaded.events:
            return [e.envelope.type for e in loaded.events]
        await asyncio.sleep(0.2)
    raise AssertionError(f"order {order_id}: the shipping worker handled nothing (command sent: {sent})")


async def _check_running(task: asyncio.Task[None]) -> None:
    if task.done():
        raise AssertionError(f"the role died while JetStream was unavailable: {task.exception()!r}")


async def _consumes(role: asyncio.Task[None], urls: list[str], replicas: int, order_id: int) -> None:
    """The role handles a command sent now (after provisioning it), and is still running after it."""
    nc = await nats.connect(servers=urls)
    try:
        assert await _ship_and_wait(nc, replicas, order_id) == ["ShipmentDispatched"]
    finally:
        await nc.close()
    await _check_running(role)


async def test_worker_started_before_the_server_and_provisioning_consumes_once_both_happened(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(short_tmp / "nats")  # ports chosen, not started yet
    settings = Settings(nats_url=server.url, health_port=0)
    role = asyncio.create_task(workers_role(settings, ("shipping",)))
    try:
        await asyncio.sleep(1.5)  # connection refused meanwhile
        await _check_running(role)
        await server.start()
        await asyncio.sleep(1.5)  # up, but nothing provisioned: the worker waits and says why
        await _check_running(role)
        assert "stream EVENTS does not exist: run `eda provision`" in caplog.text
        await _consumes(role, [server.url], 1, 7)
    finally:
        role.cancel()
        await asyncio.gather(role, return_exceptions=True)
        await server.stop()


async def test_worker_started_without_jetstream_quorum_consumes_once_it_is_back(short_tmp: Path) -> None:
    async with running_cluster(short_tmp / "cluster") as cluster:
        cluster.kill("n2")
        cluster.kill("n3")  # n1 alone: no meta leader, every $JS.API request times out
        settings = Settings(nats_url=cluster.url, stream_replicas=3, health_port=0)
        role = asyncio.create_task(workers_role(settings, ("shipping",)))
        try:
            await asyncio.sleep(7.0)  # longer than one $JS.API timeout (5 s)
            await _check_running(role)
            await asyncio.gather(cluster.restart("n2"), cluster.restart("n3"))
            await _consumes(role, cluster.urls, 3, 8 + uuid.uuid4().int % 1000)
        finally:
            role.cancel()
            await asyncio.gather(role, return_exceptions=True)
