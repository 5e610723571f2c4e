"""Chaos fixtures: a fresh 3-node JetStream cluster per test (``app.dev.cluster``), application-style
connections to it (``connect_nats`` with all three URLs), replica digests, and the figures file.

Figures are printed (run pytest with ``-s`` to see them live) and appended to
``test-artifacts/chaos-<name>.json`` (one record per run, so repeated runs can be compared).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster, running_cluster, stream_leader
from app.eventstore.connection import connect_nats
from app.settings import Settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def cluster(short_tmp: Path) -> AsyncIterator[NatsCluster]:
    async with running_cluster(short_tmp / "cluster") as c:
        yield c


@pytest.fixture
async def connect(cluster: NatsCluster) -> AsyncIterator[Callable[[str], Awaitable[NATS]]]:
    """``await connect(name)``: a connection made exactly as the application makes it."""
    made: list[NATS] = []

    async def _connect(name: str) -> NATS:
        nc = await connect_nats(Settings(nats_url=cluster.url), name=name)
        made.append(nc)
        return nc

    yield _connect
    for nc in made:
        if not nc.is_closed:
            await nc.close()


def record(name: str, figures: dict[str, Any]) -> None:
    """Print the figures and append them to ``test-artifacts/chaos-<name>.json``."""
    figures = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures}
    print(f"\nCHAOS {name}: {json.dumps(figures, indent=1)}")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"chaos-{name}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(figures)
    path.write_text(json.dumps(runs, indent=1))


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def current_leader(nc: NATS, stream: str, timeout: float = 60.0) -> str:
    """The stream's leader, waiting through an election (stream info fails or has no leader)."""
    js = nc.jetstream(timeout=2.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            leader = await stream_leader(js, stream)
        except Exception:
            leader = None
        if leader:
            return leader
        await asyncio.sleep(0.2)
    raise AssertionError(f"{stream} has no leader after {timeout}s")


async def move_leader(nc: NATS, stream: str, to: str, timeout: float = 60.0) -> None:
    """Make ``to`` the stream leader (step-down with a preferred placement, nats-server >= 2.11)."""
    deadline = time.monotonic() + timeout
    while await current_leader(nc, stream) != to:
        if time.monotonic() > deadline:
            raise AssertionError(f"could not move the {stream} leader to {to}")
        request = json.dumps({"placement": {"preferred": to}}).encode()
        with contextlib.suppress(Exception):  # retried until the leader is where we want it
            await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", request, timeout=5)
        await asyncio.sleep(0.5)


async def leader_digests(nc: NATS, stream: str, last_seq: int, *, concurrency: int = 64) -> list[str]:
    """SHA-256 of every stored message 1..last_seq, read with ``$JS.API.STREAM.MSG.GET`` — which only
    the stream leader answers, so this digests exactly the leader's own store. The digest covers
    subject, sequence, raw headers, payload and the stored timestamp."""
    digests = [""] * last_seq
    sem = asyncio.Semaphore(concurrency)

    async def one(seq: int) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    msg = await nc.request(
                        f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps({"seq": seq}).encode(), timeout=5
                    )
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)
            doc = json.loads(msg.data)
            m = doc.get("message")
            if m is None:
                digests[seq - 1] = f"missing:{doc.get('error')}"
                return
            h = hashlib.sha256()
            for part in (m["subject"], str(m["seq"]), m.get("hdrs", ""), m.get("data", ""), m["time"]):
                h.update(part.encode())
                h.update(b"\0")
            digests[seq - 1] = h.hexdigest()

    await asyncio.gather(*(one(seq) for seq in range(1, last_seq + 1)))
    return digests


async def replica_digests(cluster: NatsCluster, nc: NATS, stream: str, last_seq: int) -> dict[str, list[str]]:
    """Per node: the digests of its replica, read while that node is made the leader in turn."""
    out: dict[str, list[str]] = {}
    for name in cluster.nodes:
        await move_leader(nc, stream, name)
        out[name] = await leader_digests(nc, stream, last_seq)
    return out
