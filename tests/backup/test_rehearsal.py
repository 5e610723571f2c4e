"""The disaster-recovery rehearsal, end to end with the real product: ``eda dev`` (embedded servers and
every role) runs sagas under HTTP load; a backup is taken while the load continues; the data directory is
destroyed; the backup is restored into fresh servers and ``eda dev`` starts on them. Then: every event
stored before the cut is there exactly once, in order (same sequence, subject, id, data, stored time);
the read model equals the fold of the log; the sagas that were mid-flight at the cut finish or
compensate; a replayed ``Idempotency-Key`` gets the original response; new order ids pass every restored
one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from pydantic import SecretStr

from app.backup.plan import CUT
from app.dev.nats import NatsServer
from app.dev.postgres import embedded_postgres
from app.dev.process import free_port, terminate
from app.domain.registry import all_event_types
from app.domain.saga import Saga
from app.eventstore.codec import EventCodec
from app.eventstore.directget import RawMessage
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.runtime.backups import BackupOptions, run_backup, run_restore
from app.settings import Settings
from tests.backup.helpers import quiet_console, raw_events
from tests.operator.seeding import folded_rows, live_rows
from tests.support.invariants import all_events, check, saga_views

EDA = str(Path(sys.executable).parent / "eda")
TARGET_EVENTS = 20_000
CLIENTS = 16
OPEN_ORDERS = "SELECT count(*) FROM readmodel.orders WHERE status NOT IN ('completed', 'cancelled')"
ENV = {
    "EDA_LOG_LEVEL": "WARNING",
    "EDA_SAGA_STEP_TIMEOUT_S": "2",
    "EDA_AUTH_MODE": "disabled",  # the rehearsal is about data, not tokens
    "OTEL_SDK_DISABLED": "true",
}


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(
            nats_url=self.urls["EDA_NATS_URL"], database_url=SecretStr(self.urls["EDA_DATABASE_URL"])
        )


@contextlib.asynccontextmanager
async def eda_dev(data_dir: Path, **extra: str) -> AsyncIterator[Dev]:
    """``eda dev`` as a process; its URLs read from its output; SIGTERM at the end."""
    log, port = data_dir.parent / f"{data_dir.name}.log", free_port()
    env = {**os.environ, **ENV, **extra}
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, started once
            [EDA, "dev", "--data-dir", str(data_dir), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    dev = Dev(proc, log, port)
    try:
        async with asyncio.timeout(60):
            while not await _ready(dev):
                assert proc.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
        yield dev
    finally:
        await terminate(proc)


async def _ready(dev: Dev) -> bool:
    for line in dev.log.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key in ("EDA_NATS_URL", "EDA_DATABASE_URL"):
            dev.urls[key] = value.strip()
    if len(dev.urls) < 2:
        return False
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{dev.port}/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Load:
    """Creates under load; every 8th with an ``Idempotency-Key`` (key → body, status, response)."""

    port: int
    keyed: dict[str, tuple[dict[str, Any], int, bytes]] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                # every 7th order is declined by the payment worker: its saga compensates
                body = {"user_id": n * 1000 + i, "amount": 20000.0 if i % 7 == 0 else 25.5}
                key = f"k-{n}-{i}" if i % 8 == 0 else None
                headers = {"Idempotency-Key": key} if key else {}
                resp = await http.post("/api/v1/orders", json=body, headers=headers)
                assert resp.status_code == 201, resp.text
                self.created.append(resp.json()["order_id"])
                if key:
                    self.keyed[key] = (body, resp.status_code, resp.content)


async def _last_sequence(nc: nats.NATS) -> int:
    """``EVENTS``' last sequence (0 while the busy server does not answer in time)."""
    try:
        return int((await nc.jetstream(timeout=10).stream_info(CUT)).state.last_seq)
    except nats.errors.TimeoutError:
        return 0


def _stored(m: RawMessage) -> tuple[int, str, dict[str, str], bytes]:
    """A stored message as Direct Get shows it, less the count of messages after it."""
    headers = {k: v for k, v in m.headers.items() if k != "Nats-Num-Pending"}
    return m.sequence, m.subject, headers, m.data


def _sagas(events: list[Any]) -> dict[int, Saga]:
    return {oid: saga for oid, saga in saga_views(events).items() if isinstance(saga, Saga)}


@dataclass
class Run:
    """What the load and the backup left: the cut, the log as it was, the requests made."""

    cut: int
    original: list[RawMessage]
    load: Load
    timings: dict[str, float]


async def _under_load(primary_dir: Path, backup_dir: Path) -> Run:
    """``eda dev`` under load until ``TARGET_EVENTS``; a backup while the load goes on; the whole log."""
    async with eda_dev(primary_dir, EDA_PAYMENT_FAULT_DELAY_S="0.3") as dev:
        nc = await nats.connect(dev.urls["EDA_NATS_URL"])
        load = Load(dev.port)
        clients = [asyncio.create_task(load.client(n)) for n in range(CLIENTS)]
        clock = time.monotonic()
        try:
            async with asyncio.timeout(180):
                while await _last_sequence(nc) < TARGET_EVENTS:  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.25)
            loaded = time.monotonic() - clock
            manifest = await run_backup(dev.settings, BackupOptions(backup_dir), quiet_console())
            backup_s = time.monotonic() - clock - loaded
            await asyncio.sleep(1.0)  # the load goes on past the cut
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
        store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
        original = await raw_events(store)
        await store.close()
        await nc.close()
    timings = {"load": round(loaded, 1), "backup": round(backup_s, 2)}
    return Run(manifest.cut_sequence, original, load, timings)


async def _restore_into_fresh_servers(data_dir: Path, backup_dir: Path, run: Run) -> None:
    """Fresh servers in ``data_dir``; the restore the fast way (nats-server without ``sync_interval:
    always`` for the bulk load; ``eda dev`` restarts it with it, see docs/operations.md)."""
    clock = time.monotonic()
    fresh_nats = NatsServer(data_dir, sync_always=False)
    await fresh_nats.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(fresh_nats.stop)
        pg = await stack.enter_async_context(embedded_postgres(data_dir))
        fresh = Settings(nats_url=fresh_nats.url, database_url=SecretStr(pg.dsn))
        report = await run_restore(fresh, backup_dir, quiet_console())
        assert report.cut_sequence == run.cut
    run.timings["fresh servers + restore + rebuild"] = round(time.monotonic() - clock, 1)


async def _sagas_resolve(dsn: str, store: JetStreamEventStore, orders: set[int]) -> dict[str, Any]:
    """Every order terminal, then every invariant of the saga suite (bounded)."""
    conn = await db.connect(dsn)
    try:
        async with asyncio.timeout(90):
            while await conn.fetchval(OPEN_ORDERS):  # noqa: ASYNC110 - another process
                await asyncio.sleep(1.0)
            while (result := check(await all_events(store), orders, 1000))["problems"]:  # noqa: ASYNC110
                await asyncio.sleep(2.0)
    finally:
        await conn.close()
    return result


async def _replay_keys(port: int, dsn: str, run: Run, orders: set[int]) -> None:
    """Replayed keys: before the cut → the original response byte for byte; a key whose order was lost
    after the cut but is in the dump → created again under its order id; a new order passes every id."""
    conn = await db.connect(dsn)
    try:
        reopened = {
            r["key"] for r in await conn.fetch("SELECT key FROM eda.idempotency_keys WHERE state = 'pending'")
        }
    finally:
        await conn.close()
    replayed = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for key, (body, status, content) in run.load.keyed.items():
            order_id = int(httpx.Response(status, content=content).json()["order_id"])
            if order_id in orders and replayed < 20:
                resp = await http.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
                assert (resp.status_code, resp.content) == (status, content)
                replayed += 1
            elif key in reopened:
                resp = await http.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
                assert (resp.status_code, resp.json()["order_id"]) == (201, order_id)
        assert replayed == 20
        resp = await http.post("/api/v1/orders", json={"user_id": 1, "amount": 1.0})
        assert resp.status_code == 201
        assert resp.json()["order_id"] > max(orders)


async def _read_model_is_the_fold(dsn: str, store: JetStreamEventStore) -> int:
    """Wait (bounded) until the read model equals the fold of the log; returns the orders in it."""
    conn = await db.connect(dsn)
    try:
        deadline = time.monotonic() + 30
        while (expected := await folded_rows(store)) != (live := await live_rows(conn, "readmodel")):
            if time.monotonic() > deadline:
                differing = [k for k in expected.keys() | live.keys() if expected.get(k) != live.get(k)]
                shown = {k: (expected.get(k), live.get(k)) for k in sorted(differing)[:3]}
                raise AssertionError(f"{len(differing)} orders differ from the fold: {shown}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return len(expected)


async def test_backup_under_load_destroy_restore_and_continue(short_tmp: Path) -> None:
    primary_dir, backup_dir, restored_dir = (
        short_tmp / "primary",
        short_tmp / "backup",
        short_tmp / "restored",
    )
    run = await _under_load(primary_dir, backup_dir)
    assert run.cut >= TARGET_EVENTS
    assert len(run.original) > run.cut  # events were stored after the cut
    shutil.rmtree(primary_dir)  # the disaster: the data directory is gone
    await _restore_into_fresh_servers(restored_dir, backup_dir, run)
    clock = time.monotonic()
    async with eda_dev(restored_dir) as dev:
        dsn = dev.urls["EDA_DATABASE_URL"]
        nc = await nats.connect(dev.urls["EDA_NATS_URL"])
        store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
        restored = await raw_events(store)
        # every event stored before the cut: exactly once, in order, byte for byte (stored time included)
        assert [_stored(m) for m in restored[: run.cut]] == [_stored(m) for m in run.original[: run.cut]]
        ids = [m.headers.get("Nats-Msg-Id") for m in restored]
        assert len(ids) == len(set(ids))
        at_cut = [e for e in await all_events(store) if e.sequence <= run.cut]
        mid_flight = [oid for oid, saga in _sagas(at_cut).items() if not saga.terminal]
        assert mid_flight, "no saga was mid-flight at the cut"
        orders = {int(e.envelope.aggregate_id) for e in at_cut if e.envelope.aggregate_type == "order"}
        result = await _sagas_resolve(dsn, store, orders)  # interrupted sagas finish or compensate
        assert result["outcome"]["cancelled"] > 0  # declined payments compensated
        run.timings["eda dev up + sagas resolved"] = round(time.monotonic() - clock, 1)
        await _replay_keys(dev.port, dsn, run, orders)
        assert await _read_model_is_the_fold(dsn, store) >= len(orders) + 1
        print(f"rehearsal (s): {run.timings}; cut {run.cut}; {len(mid_flight)} sagas mid-flight at the cut")
        await store.close()
        await nc.close()
