"""Continuous protection on real servers: a primary nats-server (JetStream domain ``primary``) and a
disaster-recovery server (domain ``dr``) joined by a leafnode; ``eda mirror create`` makes the DR side
mirror ``EVENTS`` through ``$JS.primary.API``; the lag is measured from both sides; after the primary is
lost, ``eda restore --from-mirror`` (with the last backup for PostgreSQL) brings back the same log into
a fresh server, the saga consumer re-created from the backup's position, the counter above every id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from pydantic import SecretStr

from app.backup import mirror as mirrors
from app.deploy.provision import provision
from app.dev.nats import NatsServer
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel.migrations import migrate_dsn
from app.runtime.backups import BackupOptions, run_backup, run_mirror_create, run_mirror_status, run_restore
from app.settings import Settings
from tests.backup.helpers import fill, primary_and_dr, quiet_console, raw_events
from tests.operator.seeding import seed_orders


async def test_mirror_lag_and_restore_from_the_mirror(fresh_db: str, short_tmp: Path) -> None:
    await migrate_dsn(fresh_db, "readmodel")
    async with primary_and_dr(short_tmp) as (primary, dr):
        settings = Settings(
            nats_url=primary.url, database_url=SecretStr(fresh_db), mirror_url=dr.url, mirror_max_lag_s=30.0
        )
        nc = await nats.connect(primary.url)
        mnc = await nats.connect(dr.url)
        await provision(nc, 1)  # what the chart's provision Job does on the primary
        store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
        filled = await fill(nc, store, fresh_db, 100)
        await run_mirror_create(settings, "primary", 1, quiet_console())
        caught_up = await mirrors.wait_caught_up(nc, mnc, "EVENTS", timeout=30)
        assert caught_up.lag_messages == 0
        assert caught_up.mirror_last_sequence == filled["events"]
        status = await run_mirror_status(settings, quiet_console())
        assert status.error is None

        # the backup records the mirror's state; then more orders reach only the primary and the mirror
        manifest = await run_backup(settings, BackupOptions(short_tmp / "b"), quiet_console())
        assert manifest.mirror is not None
        assert manifest.mirror.mirror_last_sequence <= manifest.mirror.source_last_sequence
        more = await seed_orders(store, 1001, 50)
        expected = filled["events"] + more
        await mirrors.wait_caught_up(nc, mnc, "EVENTS", timeout=30)
        before = await raw_events(store)
        assert len(before) == expected
        halfway = next(c.ack_floor for c in manifest.stream("EVENTS").consumers if c.name == "halfway")  # type: ignore[union-attr]
        await nc.close()
        await primary.stop()  # the primary is lost; the mirror's side still answers
        await mnc.close()

        fresh = NatsServer(short_tmp / "new-primary")
        await fresh.start()
        try:
            target = settings.model_copy(update={"nats_url": fresh.url})
            report = await run_restore(target, short_tmp / "b", quiet_console(), from_mirror=True, force=True)
            nc2 = await nats.connect(fresh.url)
            store2 = await JetStreamEventStore.open(nc2, EventCodec(all_event_types()))
            after = await raw_events(store2)
            assert [(m.sequence, m.subject, m.data) for m in after] == [
                (m.sequence, m.subject, m.data) for m in before
            ]
            assert [m.headers.get("Nats-Msg-Id") for m in after] == [
                m.headers.get("Nats-Msg-Id") for m in before
            ]
            # the durable consumer comes back at the backup's position; commands and timers are left out
            assert sorted(report.consumers) == ["halfway", "saga-orchestrator", "worker-shipping-orders"]
            info = await nc2.jetstream().consumer_info("EVENTS", "halfway")
            assert info.config.opt_start_seq == halfway + 1
            names = {i.config.name for i in await nc2.jetstream().streams_info()}
            assert names == {"EVENTS", "KV_snapshots", "COUNTERS", "DLQ"}  # DLQ: provisioned, empty
            assert report.counter is not None
            assert report.counter.after >= 1050  # above every order of the mirror's log
            await asyncio.sleep(0)
            await store2.close()
            await nc2.close()
        finally:
            await fresh.stop()
