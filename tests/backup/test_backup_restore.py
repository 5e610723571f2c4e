"""``eda backup``/``eda restore`` on the real servers: a round trip gives back the same streams (same
sequences, headers, stored times, consumer positions), the same PostgreSQL rows and ids that continue
above every restored one; a non-empty target is refused; a corrupted chunk is found by ``--verify`` and by
restore, and nothing is half-restored."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from pydantic import SecretStr

from app.api.ids import OrderIds
from app.backup.manifest import MANIFEST, read_manifest
from app.backup.restore import RestoreRefused
from app.backup.snapshotapi import SnapshotError
from app.backup.verify import BackupInvalid, verify
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel.migrations import migrate_dsn
from app.runtime.backups import BackupOptions, run_backup, run_restore
from app.settings import Settings
from tests.backup.helpers import fill, quiet_console, raw_events, stream_states

EDA = str(Path(sys.executable).parent / "eda")
ORDERS = 300


async def _wipe(nc: NATS, dsn: str) -> None:
    """Lose everything a backup holds (the streams and the ``eda`` tables)."""
    js = nc.jetstream()
    for info in await js.streams_info():
        await js.delete_stream(info.config.name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE eda.idempotency_keys, eda.maintenance_runs")
    finally:
        await conn.close()


async def _eda(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``eda`` command line as a child process."""
    return await asyncio.to_thread(
        subprocess.run, [EDA, *args], env=env, capture_output=True, text=True, check=False
    )


async def _keys(dsn: str) -> dict[str, tuple[str, int | None, int | None]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT key, state, order_id, response_status FROM eda.idempotency_keys")
    finally:
        await conn.close()
    return {r["key"]: (r["state"], r["order_id"], r["response_status"]) for r in rows}


@pytest.fixture
async def filled(nc: NATS, store: JetStreamEventStore, readmodel_dsn: str) -> dict[str, object]:
    return await fill(nc, store, readmodel_dsn, ORDERS)


def _nonempty(states: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    return {k: (v if v[2] else (0, v[1], 0)) for k, v in states.items()}


async def test_round_trip_refusals_and_continuing_ids(
    nc: NATS, store: JetStreamEventStore, readmodel_dsn: str, filled: dict[str, object], short_tmp: Path
) -> None:
    settings = Settings(nats_url=nc.connected_url.geturl(), database_url=SecretStr(readmodel_dsn))  # type: ignore[union-attr]
    before_events, before_states = await raw_events(store), await stream_states(nc)
    halfway = (await nc.jetstream().consumer_info("EVENTS", "halfway")).ack_floor.stream_seq
    backup = short_tmp / "b1"
    manifest = await run_backup(settings, BackupOptions(backup), quiet_console())
    assert manifest.cut_sequence == len(before_events) == filled["events"]
    assert [s.name for s in manifest.streams] == [  # all provisioned (js_clean), DLQ empty
        "KV_snapshots",
        "COMMANDS",
        "EVENTS",
        "SAGA_TIMERS",
        "DLQ",
        "COUNTERS",
    ]
    assert manifest.absent_streams == []
    assert manifest.order_id_counter == ORDERS
    consumers = {c.name: c.ack_floor for c in manifest.stream("EVENTS").consumers}  # type: ignore[union-attr]
    assert consumers == {"halfway": halfway, "saga-orchestrator": 0, "worker-shipping-orders": 0}
    assert {t.name: t.rows for t in manifest.postgres.tables} == {
        "idempotency_keys": 2,
        "maintenance_runs": 0,
    }  # type: ignore[union-attr]
    with pytest.raises(Exception, match="already holds a backup"):
        await run_backup(settings, BackupOptions(backup), quiet_console())

    # a populated target is refused, and left as it was
    with pytest.raises(RestoreRefused, match=r"EVENTS holds .* messages.*idempotency_keys"):
        await run_restore(settings, backup, quiet_console(), rebuild=False)
    assert await stream_states(nc) == before_states

    await _wipe(nc, readmodel_dsn)
    report = await run_restore(settings, backup, quiet_console(), rebuild=False)
    after = await stream_states(nc)
    counter = after.pop("COUNTERS")
    # an empty stream (DLQ) restores empty: its first sequence reads 1 after a restore, 0 when created
    assert _nonempty(after) == _nonempty({k: v for k, v in before_states.items() if k != "COUNTERS"})
    assert counter[1] == before_states["COUNTERS"][1] + 1  # one increment raised it (below)
    assert await raw_events(store) == before_events  # same sequences, subjects, headers, stored times
    assert (await nc.jetstream().consumer_info("EVENTS", "halfway")).ack_floor.stream_seq == halfway
    assert (await (await SnapshotStore.open(nc.jetstream())).kv.get("order.1")).value == b'{"snapshot": 1}'
    assert report.rows == {"idempotency_keys": 2, "maintenance_runs": 0}
    # the key of an order after the cut is re-opened; the counter passes the highest id anywhere
    assert await _keys(readmodel_dsn) == {
        "key-of-order-2": ("completed", 2, 201),
        "key-after-cut": ("pending", ORDERS + 50, None),
    }
    assert report.reopened_keys == 1
    assert report.counter is not None
    assert report.counter.after == ORDERS + 50
    assert await (await OrderIds.open(nc)).next() == ORDERS + 51

    # --force replaces a populated target
    await nc.jetstream().publish("events.order.9999", b"{}")
    again = await run_restore(settings, backup, quiet_console(), force=True, rebuild=False, skip_ids=100)
    assert again.counter is not None
    assert again.counter.after == ORDERS + 50 + 100  # ids possibly handed out after the cut stay unused
    assert set(again.replaced) == {"EVENTS", "KV_snapshots", "COMMANDS", "SAGA_TIMERS", "DLQ", "COUNTERS"}
    assert await raw_events(store) == before_events


async def test_corrupted_chunk_is_detected_and_nothing_is_half_restored(
    nc: NATS, store: JetStreamEventStore, readmodel_dsn: str, filled: dict[str, object], short_tmp: Path
) -> None:
    settings = Settings(nats_url=nc.connected_url.geturl(), database_url=SecretStr(readmodel_dsn))  # type: ignore[union-attr]
    good = short_tmp / "good"
    env = {**os.environ, "EDA_NATS_URL": settings.nats_url, "EDA_DATABASE_URL": readmodel_dsn}
    done = await _eda(["backup", "--to", str(good), "--no-verify"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backup complete: cut at EVENTS sequence" in done.stdout
    manifest = read_manifest(good)

    # a flipped byte in the stream restored LAST (COUNTERS): found before anything is touched
    bad = short_tmp / "bad"
    shutil.copytree(good, bad)
    chunk = bad / manifest.stream("COUNTERS").chunks[0].file  # type: ignore[union-attr]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    with pytest.raises(BackupInvalid, match=r"streams/COUNTERS/00000001.s2 is corrupted"):
        await verify(bad)
    out = await _eda(["restore", "--from", str(bad), "--verify"], env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "error:" in out.stdout
    assert "COUNTERS/00000001.s2 is corrupted" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    await _wipe(nc, readmodel_dsn)
    with pytest.raises(BackupInvalid, match="corrupted"):
        await run_restore(settings, bad, quiet_console(), rebuild=False)
    assert await stream_states(nc) == {}
    assert await _keys(readmodel_dsn) == {}  # untouched

    # a chunk that passes its checksum but that the server rejects: every stream restored before it
    # (EVENTS, KV_snapshots, ...) is deleted again, PostgreSQL is not touched
    broken = short_tmp / "broken"
    shutil.copytree(good, broken)
    counters = manifest.stream("COUNTERS")
    assert counters is not None
    path = broken / counters.chunks[0].file
    path.write_bytes(b"\xff\x06\x00\x00S2sTwO" + b"not an archive" * 10)
    body = json.loads((broken / MANIFEST).read_text())
    (entry,) = [s for s in body["streams"] if s["name"] == "COUNTERS"]
    entry["chunks"][0] |= {
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    (broken / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(SnapshotError, match="restore of COUNTERS"):
        await run_restore(settings, broken, quiet_console(), rebuild=False)
    assert await stream_states(nc) == {}
    assert await _keys(readmodel_dsn) == {}


async def test_backup_of_an_unmigrated_or_empty_system_is_refused_cleanly(
    nc: NATS, readmodel_dsn: str, short_tmp: Path
) -> None:
    settings = Settings(nats_url=nc.connected_url.geturl(), database_url=SecretStr(readmodel_dsn))  # type: ignore[union-attr]
    await migrate_dsn(readmodel_dsn, "readmodel")
    await nc.jetstream().delete_stream("EVENTS")  # js_clean provisioned it: a system never provisioned
    target = short_tmp / "none"
    with pytest.raises(Exception, match="EVENTS does not exist"):
        await run_backup(settings, BackupOptions(target), quiet_console())
    assert not target.exists()  # nothing left behind
