"""Backup/restore benchmark (not a test): events/s of ``eda backup`` and ``eda restore``, and the
disaster-recovery mirror's lag under HTTP load.

``throughput`` (default): seeds N order events (default 200,000) into an embedded nats-server
(``sync_interval: always``) + PostgreSQL, takes a backup (every part of the plan: JetStream snapshots of
the streams, the COPY dump of schema ``eda``, the manifest), verifies it (every chunk's SHA-256), then
restores it into a fresh nats-server and rebuilds the read model. Reported: backup events/s (whole
backup, and the EVENTS snapshot alone), verify MB/s, restore events/s (streams + PostgreSQL + counter),
rebuild events/s, and the backup's size. ``--restore-sync default`` restores into a server started with
nats-server's default ``sync_interval`` (the restore writes one fsync per message under ``always``; see
docs/operations.md for when that trade is acceptable).

``mirror-lag``: a primary server (JetStream domain ``primary``) and a disaster-recovery server (domain
``dr``, leafnode link) with the mirror of ``EVENTS``; ``eda api`` and ``eda projector`` as processes on
the primary, ``benchmarks/api_load.py``'s load generator for ``--seconds``; the mirror's lag (messages,
and age of the oldest event it lacks) is sampled every 100 ms.

Run: ``.venv/bin/python benchmarks/backup.py [throughput --events N] | mirror-lag [--clients C --seconds S]``.
Prints a table and writes ``benchmarks/results/backup.json`` / ``backup_mirror.json``. Target on a 2-core
machine: backup >= 50,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import nats
from harness import EDA, pct, report, role_env

from app.backup import mirror as mirrors
from app.backup.restore import RestoreRequest, restore
from app.backup.take import BackupRequest, take_backup
from app.backup.verify import verify
from app.deploy.provision import provision
from app.dev.nats import NatsServer, embedded_nats
from app.dev.postgres import embedded_postgres
from app.dev.process import free_port
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate_dsn
from app.readmodel.rebuild import Rebuild, RebuildRequest
from app.runtime.bootstrap import prepare
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.backup.helpers import primary_and_dr  # noqa: E402
from tests.operator.seeding import seed_orders  # noqa: E402

TARGETS = {"backup_events_per_s": 50_000}


async def throughput(events: int, restore_sync: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_nats(base / "nats") as server, embedded_postgres(base / "pg") as pg:
            nc = await nats.connect(server.url)
            await provision(nc, 1)
            store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
            await migrate_dsn(pg.dsn, "readmodel")
            seeded = await seed_orders(store, 1, int(events / 3.8) + 1, concurrency=8)
            conn = await asyncpg.connect(pg.dsn)
            started = time.perf_counter()
            manifest = await take_backup(nc, conn, BackupRequest(base / "backup"))
            backup_s = time.perf_counter() - started
            await conn.close()
            await store.close()
            await nc.close()
            started = time.perf_counter()
            checked = await verify(base / "backup")
            verify_s = time.perf_counter() - started
            target = NatsServer(base / "restored", sync_always=restore_sync == "always")
            await target.start()
            try:
                nc2 = await nats.connect(target.url)
                started = time.perf_counter()
                request = RestoreRequest(base / "backup", force=True)
                await restore(nc2, pg.dsn, request)
                restore_s = time.perf_counter() - started
                store2 = await JetStreamEventStore.open(nc2, EventCodec(all_event_types()))
                pool = await db.create_pool(pg.dsn, size=4)
                started = time.perf_counter()
                await Rebuild(store2, pool, RebuildRequest()).run()
                rebuild_s = time.perf_counter() - started
                await pool.close()
                await store2.close()
                await nc2.close()
            finally:
                await target.stop()
    events_stream = manifest.stream("EVENTS")
    assert events_stream is not None
    return {
        "events": seeded,
        "backup_s": backup_s,
        "backup_events_per_s": seeded / backup_s,
        "events_snapshot_events_per_s": seeded / events_stream.seconds,
        "backup_mbytes": checked.bytes / 1e6,
        "verify_mbytes_per_s": checked.bytes / 1e6 / verify_s,
        "restore_s": restore_s,
        "restore_events_per_s": seeded / restore_s,
        "rebuild_events_per_s": seeded / rebuild_s,
    }


async def mirror_lag(clients: int, seconds: float, warmup: float) -> dict[str, float]:
    from api_load import PRICED, drive

    with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o711)
        async with primary_and_dr(base) as (primary, dr), embedded_postgres(base / "pg") as pg:
            nc, mnc = await nats.connect(primary.url), await nats.connect(dr.url)
            await prepare(Settings(nats_url=primary.url, database_url=pg.dsn))  # type: ignore[arg-type]
            await mirrors.create_mirror(mnc, "EVENTS", "primary", 1)
            # the mirror's lag is measured, not authentication
            env = role_env(primary.url, pg.dsn) | {"EDA_AUTH_MODE": "disabled"} | PRICED
            port = free_port()
            commands = [["api", "--host", "127.0.0.1", "--port", str(port)], ["projector"]]
            procs = [subprocess.Popen([EDA, *cmd], env=env) for cmd in commands]  # noqa: ASYNC220
            samples: list[tuple[int, float]] = []

            async def sample() -> None:
                while True:
                    check = await mirrors.lag(nc, mnc)
                    samples.append((check.lag_messages, check.lag_seconds))
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            try:
                load = await drive((f"http://127.0.0.1:{port}",), pg.dsn, clients, seconds, warmup)
            finally:
                sampler.cancel()
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await asyncio.to_thread(proc.wait, 15)
            final = await mirrors.wait_caught_up(nc, mnc, "EVENTS", timeout=30)
            await nc.close()
            await mnc.close()
    if not load["creates_per_s"]:  # a lag of 0 without load measures nothing
        raise SystemExit(f"no order was created under load ({load['errors']:.0f} errors): nothing measured")
    measured = samples[int(len(samples) * warmup / (warmup + seconds)) :] or samples
    messages = [float(m) for m, _ in measured]
    lag_s = [s for _, s in measured]
    return {
        "creates_per_s": load["creates_per_s"],
        "mirror_lag_messages_p50": pct(messages, 0.5),
        "mirror_lag_messages_p99": pct(messages, 0.99),
        "mirror_lag_ms_p50": pct(lag_s, 0.5) * 1000,
        "mirror_lag_ms_p99": pct(lag_s, 0.99) * 1000,
        "mirror_lag_ms_max": max(lag_s, default=0.0) * 1000,
        "mirror_caught_up_after_load": float(final.lag_messages == 0),
        "samples": float(len(measured)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    tp = sub.add_parser("throughput")
    tp.add_argument("--events", type=int, default=200_000)
    tp.add_argument("--restore-sync", choices=["always", "default"], default="always")
    ml = sub.add_parser("mirror-lag")
    ml.add_argument("--clients", type=int, default=64)
    ml.add_argument("--seconds", type=float, default=20.0)
    ml.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    if args.mode == "mirror-lag":
        result = asyncio.run(mirror_lag(args.clients, args.seconds, args.warmup))
        report(result, {}, "backup_mirror.json")
        return
    events = getattr(args, "events", 200_000)
    result = asyncio.run(throughput(events, getattr(args, "restore_sync", "always")))
    report(result, TARGETS, "backup.json")


if __name__ == "__main__":
    main()
