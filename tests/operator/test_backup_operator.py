"""The ``Backup`` custom resource: the real operator (kopf, in-process) against kmock's emulator with real
NATS + PostgreSQL — a one-shot backup with its manifest summary, progress fields and Events, a scheduled
one that keeps the newest ``retain`` backups, and an invalid schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from emulator import Emulator
from harness import LIVE, NS, operator
from nats.aio.client import Client as NATS
from pydantic import SecretStr
from seeding import seed_orders

from app.backup.retention import backups
from app.backup.verify import verify
from app.eventstore.jetstream import JetStreamEventStore
from app.settings import Settings
from tests.support.eventually import eventually

pytestmark = [pytest.mark.kmock(cls=Emulator)]
BAK = "/apis/eda.dev/v1alpha1/namespaces/default/backups"


@pytest.fixture
def settings(nats_url: str, readmodel_dsn: str, short_tmp: Path) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=SecretStr(readmodel_dsn),
        readmodel_schema=LIVE,
        backup_dir=str(short_tmp / "volume"),
    )


async def test_one_shot_and_scheduled_backups_with_retention(
    kmock: Any, settings: Settings, nc: NATS, store: JetStreamEventStore, short_tmp: Path
) -> None:
    events = await seed_orders(store, 1, 200)
    async with operator(kmock, settings) as kube:
        await kube.create(BAK, "Backup", "once", {"directory": "once"})
        await eventually(lambda: kube.status("backups", "once").get("phase") == "Succeeded")
        status = kube.status("backups", "once")
        last = status["lastBackup"]
        assert (last["events"], last["cutSequence"]) == (events, events)
        assert last["streams"]["EVENTS"] == events
        assert last["rows"] == {"idempotency_keys": 0, "maintenance_runs": 0}
        assert last["verified"] is True
        assert last["bytes"] > 0
        assert (status["kept"], status["runs"], status["observedGeneration"]) == (1, 1, 1)
        assert status.get("nextRunAt") is None
        assert kube.condition("backups", "once", "Succeeded")["reason"] == "BackupCompleted"
        assert kube.condition("backups", "once", "Running")["status"] == "False"
        await eventually(lambda: ("Normal", "BackupCompleted") in kube.events())
        path = Path(last["path"])
        assert path.parent == Path(settings.backup_dir) / "once"
        assert (await verify(path)).manifest.cut_sequence == events

        # every second (6th cron field), keeping 2: older backups are removed as new ones are written
        await kube.create(BAK, "Backup", "cron", {"schedule": "* * * * * */1", "retain": 2})
        await eventually(lambda: kube.status("backups", "cron").get("runs", 0) >= 4, timeout=60)
        status = kube.status("backups", "cron")
        assert status["phase"] == "Scheduled"
        assert status["nextRunAt"] >= status["lastRunAt"]
        kept = [p.name for p in backups(Path(settings.backup_dir) / f"{NS}-cron")]
        assert len(kept) == 2
        assert set(status["backups"]) <= set(kept) | {status["lastBackup"]["name"]}
        await eventually(lambda: ("Normal", "BackupsPruned") in kube.events())

        await kube.create(BAK, "Backup", "badcron", {"schedule": "every night"})
        await eventually(
            lambda: kube.condition("backups", "badcron", "Failed").get("reason") == "InvalidSpec"
        )
        assert kube.status("backups", "badcron")["phase"] == "Failed"
