"""A hung (SIGSTOPped) server keeps its TCP connections open, so only the client's own pings notice it.
With nats-py's defaults (ping every 120 s, 2 outstanding) an application connected to a hung node
stalls for minutes; ``connect_nats`` must abandon it and fail over to a live node within seconds."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster
from tests.support.chaos import record

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

FAILOVER_WITHIN_S = 20.0


async def test_client_fails_over_from_a_hung_node(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]]
) -> None:
    nc = await connect("chaos-hung")
    assert nc.connected_url is not None
    port = nc.connected_url.port
    [victim] = [name for name, node in cluster.nodes.items() if node.port == port]
    paused_at = time.monotonic()
    cluster.pause(victim)
    try:
        failover_s = None
        while time.monotonic() - paused_at < FAILOVER_WITHIN_S + 10:
            try:
                await nc.request("$JS.API.INFO", b"", timeout=1)
            except Exception:
                continue
            if nc.connected_url is not None and nc.connected_url.port != port:
                failover_s = time.monotonic() - paused_at
                break
    finally:
        cluster.resume(victim)
    record("hung-node-failover", {"paused_node": victim, "failover_s": failover_s})
    assert failover_s is not None, "never failed over"
    assert failover_s < FAILOVER_WITHIN_S
