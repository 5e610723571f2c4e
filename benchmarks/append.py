"""Event-store benchmark (not a test): appends/s and aggregate load times on an embedded nats-server
with ``sync_interval: always``.

(a) one aggregate, sequential appends with the concurrency header;
(b) 1,000 aggregates appended concurrently (one new order each, several rounds);
(c) load of a 10,000-event aggregate without and with a snapshot.

Run: ``.venv/bin/python benchmarks/append.py [--events N]``. Prints a table and writes JSON to
``benchmarks/results/append.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import nats

from app.deploy.provision import provision
from app.dev.nats import embedded_nats
from app.domain.order import ORDER, OrderCreated, OrderPaid
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import NEW, Metadata, NewEvent, StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Repository

META = Metadata(correlation_id="bench")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PEER = {"one_aggregate": 503, "many_aggregates": 545, "load_5000_ms": 362}


def created(order_id: int) -> OrderCreated:
    return OrderCreated(
        order_id=order_id, user_id=1, items=(), amount=Decimal("9.99"), currency="USD", at=T0, owner="1"
    )


def paid(order_id: int, i: int) -> OrderPaid:
    return OrderPaid(order_id=order_id, payment_id=f"p{i}", amount=Decimal("9.99"), at=T0)


async def one_aggregate(store: JetStreamEventStore, n: int) -> float:
    stream = StreamId("order", "900000001")
    res = await store.append(stream, [NewEvent(event=created(900000001))], NEW, META)
    pos = res.position
    t = time.perf_counter()
    for i in range(n):
        pos = (await store.append(stream, [NewEvent(event=paid(900000001, i))], pos, META)).position
    return n / (time.perf_counter() - t)


async def many_aggregates(store: JetStreamEventStore, aggregates: int, rounds: int) -> float:
    total = 0
    t = time.perf_counter()
    for r in range(rounds):
        base = 1_000_000 + r * aggregates
        await asyncio.gather(
            *(
                store.append(StreamId("order", str(base + i)), [NewEvent(event=created(base + i))], NEW, META)
                for i in range(aggregates)
            )
        )
        total += aggregates
    return total / (time.perf_counter() - t)


async def load_times(store: JetStreamEventStore, snaps: SnapshotStore, n: int) -> tuple[float, float]:
    order_id = 800000001
    stream = StreamId("order", str(order_id))
    pos = NEW
    events = [NewEvent(event=created(order_id))] + [NewEvent(event=paid(order_id, i)) for i in range(n - 1)]
    for start in range(0, n, 500):  # bulk-load quickly in atomic batches of 500
        pos = (await store.append(stream, events[start : start + 500], pos, META)).position
    plain = Repository(store, ORDER)
    with_snap = Repository(store, ORDER, snaps)
    await with_snap.snapshot(order_id)

    async def timed(repo: Repository[object, object, object], reps: int) -> float:
        samples = []
        for _ in range(reps):
            t = time.perf_counter()
            loaded = await repo.load(order_id)
            samples.append((time.perf_counter() - t) * 1000)
            assert loaded.position.version == n
        return statistics.median(samples)

    return await timed(plain, 5), await timed(with_snap, 50)  # type: ignore[arg-type]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000, help="sequential appends in (a)")
    parser.add_argument("--aggregates", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load-events", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded_nats(Path(tmp)) as server:
            nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
            await provision(nc, 1)
            store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
            snaps = await SnapshotStore.open(nc.jetstream())
            a = await one_aggregate(store, args.events)
            b = await many_aggregates(store, args.aggregates, args.rounds)
            c_plain, c_snap = await load_times(store, snaps, args.load_events)
            await store.close()
            await nc.close()
    results = {
        "a_one_aggregate_appends_per_s": round(a),
        "b_many_aggregates_appends_per_s": round(b),
        "c_load_10k_no_snapshot_ms": round(c_plain, 2),
        "c_load_10k_with_snapshot_ms": round(c_snap, 2),
        "vs_eventsourcing_one_aggregate": round(a / PEER["one_aggregate"], 2),
        "vs_eventsourcing_many_aggregates": round(b / PEER["many_aggregates"], 2),
        "targets": {"a": 1000, "b": 2500, "c_snapshot_ms": 10},
    }
    print(f"(a) one aggregate, sequential   : {a:8.0f} appends/s  (target >= 1000; eventsourcing 503)")
    print(f"(b) {args.aggregates} aggregates, concurrent: {b:8.0f} appends/s  (target >= 2500; peer 545)")
    print(f"(c) load {args.load_events} events, no snapshot : {c_plain:8.2f} ms  (peer: 362 ms for 5,000)")
    print(f"(c) load {args.load_events} events, snapshot    : {c_snap:8.2f} ms  (target <= 10 ms)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "append.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
