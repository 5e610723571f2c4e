"""``eda provision`` on a 3-node cluster: it provisions every stream, the bucket and the consumers at R3 and
reports what it did; a second run changes nothing; a run with ``--replicas 1`` (a Job or pod with a wrong
``EDA_STREAM_REPLICAS``) is refused — a clear error, exit status 2 — and leaves every stream at R3
(before, every role called ``update_stream`` at start-up, so one such pod turned ``EVENTS`` into R1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from app.deploy.provision import ReplicaDowngrade, catalogue, provision
from app.dev.cluster import NatsCluster

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]
EDA = str(Path(sys.executable).parent / "eda")


async def _eda_provision(cluster: NatsCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"EDA_NATS_URL": cluster.url, "EDA_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(
        subprocess.run,
        [EDA, "provision", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _replicas(nc: NATS) -> dict[str, int]:
    js = nc.jetstream(timeout=5)
    return {name: (await js.stream_info(name)).config.num_replicas for name in catalogue(1).stream_names()}


async def test_provision_at_r3_then_a_run_at_r1_is_refused(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]]
) -> None:
    first = await _eda_provision(cluster, "--replicas", "3")
    assert first.returncode == 0, first.stderr
    assert "created stream EVENTS" in first.stdout
    assert "created consumer COMMANDS/worker-payment" in first.stdout
    assert "provisioned at R3: 12 created, 0 updated, 0 unchanged" in first.stdout
    nc = await connect("admin")
    assert set((await _replicas(nc)).values()) == {3}

    again = await provision(nc, 3)
    assert {o.action for o in again} == {"unchanged"}

    refused = await _eda_provision(cluster, "--replicas", "1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing to lower the replicas of EVENTS R3 -> R1" in refused.stderr
    assert refused.stdout == ""  # nothing created or updated
    with pytest.raises(ReplicaDowngrade, match="KV_snapshots R3 -> R1"):
        await provision(nc, 1)
    assert set((await _replicas(nc)).values()) == {3}
