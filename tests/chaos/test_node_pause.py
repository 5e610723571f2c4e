"""SIGSTOP one node (the EVENTS stream leader) for 30 s during load, then SIGCONT: no acknowledged write
is lost, writes go on without it, and the three replicas converge to the same last sequence and the
same content (per-sequence SHA-256 of each node's own store, read while it is made the leader)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster
from app.eventstore.jetstream import STREAM, JetStreamEventStore, events_stream_config
from tests.support.chaos import current_leader, record, replica_digests
from tests.support.eventually import eventually
from tests.support.workload import Ledger, assert_nothing_lost, audit, audit_figures, chaos_codec, run_writers

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

WRITERS = 4
PAUSE_S = 30.0
BEFORE_S = 3.0
AFTER_S = 5.0


async def test_sigstop_leader_30s_then_replicas_converge(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]]
) -> None:
    admin = await connect("chaos-admin")
    await admin.jetstream().add_stream(events_stream_config(3))  # R3, as `eda provision --replicas 3`
    store = await JetStreamEventStore.open(admin, chaos_codec())
    writers = [await connect(f"chaos-w{i}") for i in range(WRITERS)]
    on_node = [nc.connected_url.port if nc.connected_url else None for nc in writers]
    ledger = Ledger()
    stop = asyncio.Event()
    load = asyncio.create_task(run_writers(writers, ledger, appends=1_000_000, stop=stop))
    await eventually(lambda: ledger.appends_acked > 0, timeout=60, what="first acknowledgement")
    await asyncio.sleep(BEFORE_S)
    victim = await current_leader(admin, STREAM)
    victim_port = cluster.node(victim).port
    acked_before = ledger.appends_acked
    paused_at = time.monotonic()
    cluster.pause(victim)
    try:
        await asyncio.sleep(PAUSE_S)
        acked_during = ledger.appends_acked - acked_before
        new_leader = await current_leader(admin, STREAM)
    finally:
        cluster.resume(victim)
    resumed_at = time.monotonic()
    await asyncio.sleep(AFTER_S)
    stop.set()
    await load
    load_done = time.monotonic()
    states = await cluster.wait_converged(STREAM, timeout=120)
    converge_s = time.monotonic() - load_done
    result = await audit(store, ledger)
    last_seq = states[0].last_seq
    digest_started = time.monotonic()
    digests = await replica_digests(cluster, admin, STREAM, last_seq)
    digest_s = time.monotonic() - digest_started
    await store.close()

    reference = digests[victim]
    mismatches = {
        node: sum(1 for a, b in zip(d, reference, strict=True) if a != b) for node, d in digests.items()
    }
    missing = {node: sum(1 for d in ds if d.startswith("missing")) for node, ds in digests.items()}
    figures = {
        "paused_node": victim,
        "pause_s": PAUSE_S,
        "writers_on_paused_node": sum(1 for p in on_node if p == victim_port),
        "new_leader_during_pause": new_leader,
        "appends_acknowledged_during_pause": acked_during,
        **audit_figures(ledger, result),
        "write_outage_after_pause_s": ledger.outage_after(paused_at),
        "replicas_converged_after_load_s": round(converge_s, 3),
        "replicas_converged_after_resume_s": round(load_done + converge_s - resumed_at, 3),
        "replica_last_seq": {s.node: s.last_seq for s in states},
        "sequences_digested_per_node": last_seq,
        "digest_mismatches_vs_paused_node": mismatches,
        "digest_missing": missing,
        "digest_s": round(digest_s, 1),
    }
    record("node-pause", figures)
    assert_nothing_lost(ledger, result)
    assert len({s.last_seq for s in states}) == 1
    assert all(n == 0 for n in mismatches.values())
    assert all(n == 0 for n in missing.values())
    assert acked_during > 0, "the two remaining nodes should have kept accepting writes"
