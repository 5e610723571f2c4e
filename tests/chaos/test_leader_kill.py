"""SIGKILL the EVENTS stream leader twice during 10,000 appends from 4 writers (restarting it after a
few seconds): every acknowledged event is stored exactly once, at the sequence its ack named, and each
aggregate's versions are 1..n in stream order. ARCHITECTURE §6 "no acknowledged event lost"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.client import Client as NATS

from app.devcluster import NatsCluster
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from tests.chaos.conftest import current_leader, record, wait_for
from tests.chaos.workload import Ledger, audit, chaos_codec, run_writers

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

APPENDS = 10_000
WRITERS = 4
KILL_AT = (0.2, 0.55)  # fractions of the appends acknowledged when the leader is killed
DOWN_S = 3.0


async def test_sigkill_stream_leader_twice_loses_and_duplicates_nothing(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]]
) -> None:
    admin = await connect("chaos-admin")
    store = await JetStreamEventStore.open(admin, chaos_codec(), replicas=3)
    writers = [await connect(f"chaos-w{i}") for i in range(WRITERS)]
    ledger = Ledger()
    started = time.monotonic()
    load = asyncio.create_task(run_writers(writers, ledger, appends=APPENDS))
    kills: list[tuple[str, int, float]] = []  # (node, appends acknowledged then, when)
    rejoins: list[asyncio.Task[float]] = []
    for fraction in KILL_AT:
        await wait_for(lambda f=fraction: ledger.appends_acked >= f * APPENDS or load.done(), 600, "load")
        assert not load.done(), "the load finished before the fault: make it longer"
        leader = await current_leader(admin, STREAM)
        killed_at = time.monotonic()
        cluster.kill(leader)
        await asyncio.sleep(DOWN_S)
        await cluster.restart(leader)
        kills.append((leader, ledger.appends_acked, killed_at))
        rejoins.append(asyncio.create_task(_rejoin_time(cluster, leader, admin)))
    await load
    load_s = time.monotonic() - started
    load_done = time.monotonic()
    states = await cluster.wait_converged(STREAM, timeout=120)
    converge_s = time.monotonic() - load_done
    result = await audit(store, ledger)
    await store.close()

    events_acked = len(ledger.acked)
    figures = {
        "appends": APPENDS,
        "writers": WRITERS,
        "appends_acknowledged": ledger.appends_acked,
        "events_attempted": len(ledger.attempted),
        "events_acknowledged": events_acked,
        "events_stored": result.stored,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "misplaced": result.misplaced,
        "order_violations": result.order_violations,
        "stored_but_unacknowledged": result.unacked_stored,
        "retries": ledger.retries,
        "errors": dict(ledger.errors),
        "late_recognised_own_appends": ledger.late_recognised,
        "kills": [
            {"node": node, "at_acked": at, "write_outage_s": ledger.outage_after(t)} for node, at, t in kills
        ],
        "rejoin_s": [round(await t, 3) for t in rejoins],
        "max_append_stall_s": round(ledger.max_stall_s, 3),
        "load_s": round(load_s, 1),
        "throughput_appends_per_s": round(APPENDS / load_s, 1),
        "replicas_converged_s": round(converge_s, 3),
        "replica_last_seq": {s.node: s.last_seq for s in states},
    }
    record("leader-kill", figures)
    assert ledger.appends_acked == APPENDS
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.misplaced == 0
    assert result.order_violations == 0
    assert result.unacked_stored == 0
    assert ledger.foreign_conflicts == 0
    assert ledger.late_recognised == 0, "the store reported a conflict for its own stored append"
    assert result.stored == events_acked


async def _rejoin_time(cluster: NatsCluster, node: str, admin: NATS) -> float:
    """Seconds from the restart until ``node`` holds everything the leader had at that moment."""
    start = time.monotonic()
    target = 0
    leader = await current_leader(admin, STREAM)
    state = await cluster.replica_state(leader, STREAM)
    target = state.last_seq if state else 0
    while True:
        mine = await cluster.replica_state(node, STREAM)
        if mine is not None and mine.last_seq >= target:
            return time.monotonic() - start
        if time.monotonic() - start > 300:
            return float("nan")
        await asyncio.sleep(0.1)
