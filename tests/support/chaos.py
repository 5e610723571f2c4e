"""Chaos tooling shared by the fault-injection tests: stream leaders (find, move), per-replica message
digests, the stored projection checkpoint while PostgreSQL may be down, and the figures file — printed
(run pytest with ``-s``) and appended to ``test-artifacts/chaos-<name>.json`` (one record per run)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster, stream_leader
from app.readmodel.sql import read_checkpoint

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def record(name: str, figures: dict[str, Any]) -> None:
    """Print the figures and append them to ``test-artifacts/chaos-<name>.json``."""
    figures = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures}
    print(f"\nCHAOS {name}: {json.dumps(figures, indent=1)}")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"chaos-{name}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(figures)
    path.write_text(json.dumps(runs, indent=1))


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


async def stored_checkpoint(dsn: str, schema: str = "readmodel") -> int | None:
    """The stored checkpoint, or ``None`` while PostgreSQL is down."""
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        return await read_checkpoint(conn, schema)
    except (OSError, asyncpg.PostgresError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
