"""Rebuild benchmark (not a test): events/s replayed into PostgreSQL by the rebuild engine.

Seeds N order events (default 200,000; 4 per order, every 5th order 3) into an embedded nats-server
(``sync_interval: always``), projects them into the live read model, then times a full rebuild
(shadow schema → bulk fold + COPY → catch-up → swap) and checks the result equals the live model.

Run: ``.venv/bin/python benchmarks/rebuild.py [--events N] [--batch-size B]``. Prints the numbers and
writes JSON to ``benchmarks/results/rebuild.json``. Target on a 2-core machine: >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nats

from app.deploy.provision import provision
from app.dev.nats import embedded_nats
from app.dev.postgres import embedded_postgres
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate_dsn
from app.readmodel.rebuild import Rebuild, RebuildRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "operator"))
from seeding import checksum, project_all, seed_orders

TARGET = 20_000
RESULTS = Path(__file__).parent / "results" / "rebuild.json"


async def main(events: int, batch_size: int) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_nats(base / "nats") as server, embedded_postgres(base / "pg", fast=True) as pg:
            nc = await nats.connect(server.url)
            await provision(nc, 1)
            store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
            await migrate_dsn(pg.dsn, "readmodel")
            pool = await db.create_pool(pg.dsn, size=4)
            try:
                started = time.perf_counter()
                orders = int(events / 3.8) + 1
                seeded = await seed_orders(store, 1, orders, concurrency=8)
                seed_s = time.perf_counter() - started
                async with pool.acquire() as conn:
                    started = time.perf_counter()
                    await project_all(conn, store, "readmodel")
                    project_s = time.perf_counter() - started
                    before = await checksum(conn, "readmodel")
                result = await Rebuild(store, pool, RebuildRequest(batch_size=batch_size)).run()
                async with pool.acquire() as conn:
                    assert await checksum(conn, "readmodel") == before, "rebuilt model differs from live"
            finally:
                await pool.close()
                await store.close()
                await nc.close()
    rate = result.events_replayed / result.seconds
    return {
        "events": seeded,
        "orders": result.orders,
        "batch_size": batch_size,
        "rebuild_seconds": round(result.seconds, 2),
        "rebuild_events_per_s": round(rate),
        "target_events_per_s": TARGET,
        "seed_seconds": round(seed_s, 2),
        "live_projector_apply_batch_events_per_s": round(seeded / project_s),
        "cpus": os.cpu_count() or 0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    numbers = asyncio.run(main(args.events, args.batch_size))
    for key, value in numbers.items():
        print(f"{key:>42}: {value}")
    print("PASS" if float(numbers["rebuild_events_per_s"]) >= TARGET else "BELOW TARGET")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(numbers, indent=2) + "\n")
