"""SIGKILL the EVENTS stream leader twice during 10,000 appends of real Order events from 4 writers
(restarting it after a few seconds): every acknowledged event is stored exactly once, at the sequence its
ack named, and each aggregate's versions are 1..n in stream order (ARCHITECTURE §6 "no acknowledged
event lost"). An ``eda projector`` process (all three URLs, R3) projects during the load: once its
checkpoint reaches the stream's last sequence, every order row equals the fold of its events and there
is exactly one timeline row per event ("the read model equals the fold of the stream")."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from app.deploy.provision import provision
from app.dev.cluster import NatsCluster
from app.dev.process import log_tail
from app.eventstore.envelope import RecordedEvent
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate
from app.readmodel.queries import get_order, record_from_events
from tests.support.chaos import ARTIFACTS, current_leader, record, stored_checkpoint
from tests.support.eventually import eventually
from tests.support.workload import Ledger, assert_nothing_lost, audit, audit_figures, codec_for, run_writers

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

APPENDS = 10_000
WRITERS = 4
KILL_AT = (0.2, 0.55)  # fractions of the appends acknowledged when the leader is killed
DOWN_S = 3.0
EDA = str(Path(sys.executable).parent / "eda")
SCHEMA = "readmodel"
CATCH_UP_S = 60.0


async def test_sigkill_stream_leader_twice_loses_and_duplicates_nothing(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]], readmodel_dsn: str, short_tmp: Path
) -> None:
    admin = await connect("chaos-admin")
    await provision(admin, 3)  # what the chart's provision Job does; the projector only checks
    store = await JetStreamEventStore.open(admin, codec_for("order"))
    pg = await db.connect(readmodel_dsn)
    await migrate(pg, SCHEMA)
    await pg.close()
    env = dict(os.environ) | {
        "EDA_NATS_URL": cluster.url,
        "EDA_STREAM_REPLICAS": "3",
        "EDA_DATABASE_URL": readmodel_dsn,
        "EDA_HEALTH_PORT": "0",
    }
    log_path = short_tmp / "projector.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
            [EDA, "projector"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await _run(cluster, connect, admin, store, readmodel_dsn, proc, log_path)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        await store.close()


async def _run(
    cluster: NatsCluster,
    connect: Callable[[str], Awaitable[NATS]],
    admin: NATS,
    store: JetStreamEventStore,
    dsn: str,
    proc: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    writers = [await connect(f"chaos-w{i}") for i in range(WRITERS)]
    ledger = Ledger()
    started = time.monotonic()
    load = asyncio.create_task(run_writers(writers, ledger, appends=APPENDS, kind="order"))
    kills: list[tuple[str, int, float]] = []  # (node, appends acknowledged then, when)
    rejoins: list[asyncio.Task[float]] = []
    for fraction in KILL_AT:
        await eventually(
            lambda f=fraction: ledger.appends_acked >= f * APPENDS or load.done(), timeout=600, what="load"
        )
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
    result = await audit(store, ledger, "order")
    last = await store.last_sequence()
    while (await stored_checkpoint(dsn) or 0) < last:  # the projector catches up with the stream
        assert proc.poll() is None, f"the projector process exited:\n{log_tail(log_path)}"
        assert time.monotonic() - load_done < CATCH_UP_S, "the read model did not catch up"
        await asyncio.sleep(0.1)
    caught_up_s = time.monotonic() - load_done
    checkpoint = await stored_checkpoint(dsn)
    assert proc.poll() is None, f"the projector process exited:\n{log_tail(log_path)}"
    fold = await _compare_read_model(store, dsn, last)
    log_text = await asyncio.to_thread(log_path.read_text, errors="replace")
    if fold["timeline_missing"] or fold["orders_mismatched"] or fold["timeline_duplicated"]:
        kept = ARTIFACTS / "chaos-leader-kill-projector.log"
        await asyncio.to_thread(kept.write_text, log_text)

    events_acked = len(ledger.acked)
    figures = {
        "appends": APPENDS,
        "writers": WRITERS,
        "events_attempted": len(ledger.attempted),
        **audit_figures(ledger, result),
        "kills": [
            {"node": node, "at_acked": at, "write_outage_s": ledger.outage_after(t)} for node, at, t in kills
        ],
        "rejoin_s": [round(await t, 3) for t in rejoins],
        "load_s": round(load_s, 1),
        "throughput_appends_per_s": round(APPENDS / load_s, 1),
        "replicas_converged_s": round(converge_s, 3),
        "replica_last_seq": {s.node: s.last_seq for s in states},
        "projector": {
            "stream_last_seq": last,
            "checkpoint": checkpoint,
            "caught_up_after_load_s": round(caught_up_s, 2),
            "cycles_failed_and_retried": log_text.count("projector cycle failed"),
            "dead_lettered": log_text.count("dead-lettered"),
            "consumer_restarts_after_delivery_gap": log_text.count("projector: delivery sequence"),
            "consumer_restarts_after_losing_it": sum(
                log_text.count(f"projector: {what}") for what in ("no heartbeat from", "consumer interrupted")
            ),
            "pulls_asked_again_after_leader_change": log_text.count("asking the new leader"),
            "pulls_asked_again_after_silence": log_text.count("asking the consumer again"),
            **fold,
        },
    }
    record("leader-kill", figures)
    assert ledger.appends_acked == APPENDS
    assert_nothing_lost(ledger, result)
    assert result.stored == events_acked
    assert checkpoint == last
    assert fold["orders"] > 0
    assert fold["timeline_rows"] == fold["events"] == events_acked
    assert (fold["timeline_duplicated"], fold["timeline_missing"], fold["orders_mismatched"]) == (0, 0, 0)
    assert fold["order_rows"] == fold["orders"]
    assert log_text.count("dead-lettered") == 0


async def _compare_read_model(store: JetStreamEventStore, dsn: str, last: int) -> dict[str, int]:
    """The read model against the fold of the stream: one timeline row per event (no duplicate, no
    gap) and every order row equal to ``record_from_events`` of its events."""
    events = await store.read_all(1, limit=last + 1, subjects="events.order.>")
    by_order: dict[int, list[RecordedEvent]] = defaultdict(list)
    for event in events:
        by_order[int(event.envelope.aggregate_id)].append(event)
    pg = await db.connect(dsn)
    try:
        timeline = await pg.fetch(f"SELECT sequence FROM {SCHEMA}.order_events")
        rows = await pg.fetchval(f"SELECT count(*) FROM {SCHEMA}.orders")
        mismatched = 0
        for oid, evs in by_order.items():
            if await get_order(pg, SCHEMA, oid) != record_from_events(evs):
                mismatched += 1
    finally:
        await pg.close()
    stored = {r["sequence"] for r in timeline}
    missing = sorted({e.sequence for e in events} - stored)
    if missing:
        print(f"timeline missing sequences (first 50): {missing[:50]}")
    return {
        "events": len(events),
        "orders": len(by_order),
        "order_rows": int(rows),
        "timeline_rows": len(timeline),
        "timeline_duplicated": len(timeline) - len(stored),
        "timeline_missing": len({e.sequence for e in events} - stored),
        "orders_mismatched": mismatched,
    }


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
