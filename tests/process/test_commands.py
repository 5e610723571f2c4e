"""The one-shot commands as processes, exactly as a user types them: ``eda migrate``, ``eda rebuild``,
``eda snapshot`` (exit code, what they print, what they did to the database and the bucket) and
``eda infra --cluster 3`` (what it printed is a working 3-node JetStream cluster and a PostgreSQL); and
each one's failure — bad arguments, a server that does not answer — as a non-zero exit with a clear
line and no traceback. (``eda infra`` on one node: tests/integration/test_devstack.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import nats
import pytest
from e2e.conftest import role_env
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from app.dev.process import free_port
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db
from app.readmodel.migrations import load_migrations
from app.settings import Settings
from process.conftest import Infra
from tests.operator.seeding import folded_rows, live_rows, project_all, seed_orders

pytestmark = pytest.mark.timeout(180)
SCHEMA = "readmodel"
ORDERS = 12


async def eda(*args: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str, str]:
    """``eda <args>``: exit code, stdout, stderr."""
    from process.procs import EDA

    done = await asyncio.to_thread(
        subprocess.run, [EDA, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, done.stdout, done.stderr


def _env(nats_url: str, dsn: str, **extra: str) -> dict[str, str]:
    return role_env(Settings(nats_url=nats_url, database_url=dsn), **extra)  # type: ignore[arg-type]


async def test_migrate_applies_every_migration_once(nats_url: str, fresh_db: str) -> None:
    env = _env(nats_url, fresh_db)
    code, out, err = await eda("migrate", env=env)
    assert code == 0, err
    names = [f"{m.version:04d}_{m.name}" for m in load_migrations()]
    assert out.splitlines()[-1] == "applied: " + ", ".join(names)
    code, out, err = await eda("migrate", env=env)
    assert (code, out.splitlines()[-1]) == (0, "applied: nothing (up to date)"), err


async def _seed(nc: NATS, dsn: str) -> tuple[dict[int, tuple[object, ...]], int]:
    """Orders in the event store and the read model: the rows, and how many events."""
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    conn = await db.connect(dsn)
    try:
        events = await seed_orders(store, 1, ORDERS)
        await project_all(conn, store, SCHEMA)
        return await folded_rows(store), events
    finally:
        await conn.close()
        await store.close()


async def test_rebuild_replays_the_events_into_a_fresh_read_model(
    nc: NATS, nats_url: str, readmodel_dsn: str
) -> None:
    expected, events = await _seed(nc, readmodel_dsn)
    conn = await db.connect(readmodel_dsn)
    try:
        await conn.execute(f"DELETE FROM {SCHEMA}.orders WHERE order_id > 6")
        code, out, err = await eda("rebuild", "--projection", "orders", env=_env(nats_url, readmodel_dsn))
        assert code == 0, err
        assert f"rebuilt orders: {ORDERS} orders from {events} events" in out, out
        assert await live_rows(conn, SCHEMA) == expected
    finally:
        await conn.close()


async def test_snapshot_writes_then_skips_up_to_date_aggregates(
    nc: NATS, nats_url: str, readmodel_dsn: str
) -> None:
    await _seed(nc, readmodel_dsn)
    env = _env(nats_url, readmodel_dsn)
    code, out, err = await eda("snapshot", "--aggregate", "order", env=env)
    assert code == 0, err
    assert out.splitlines()[-1] == f"{ORDERS} aggregates scanned, {ORDERS} snapshots written, 0 up to date"
    snapshots = await SnapshotStore.open(nc.jetstream())
    assert [await snapshots.revisions(StreamId("order", str(i))) for i in (1, ORDERS)] == [1, 1]
    code, out, err = await eda("snapshot", "--aggregate", "order", "--id", "1", "--id", "2", env=env)
    assert (code, out.splitlines()[-1]) == (0, "2 aggregates scanned, 0 snapshots written, 2 up to date"), err


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def _forwarding(port: int, to: tuple[str, int]) -> AsyncIterator[None]:
    """From now on, ``port`` reaches the server at ``to`` (a PostgreSQL that has just come up there)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*to)
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        yield


async def test_migrate_with_a_timeout_waits_for_a_postgresql_that_is_not_up_yet(
    nats_url: str, fresh_db: str
) -> None:
    """The chart's migrate Job (``--timeout``) starts with the bundled PostgreSQL: it waits instead of
    failing after ``EDA_CONNECT_TIMEOUT_S`` as a command run by hand does."""
    target = urlsplit(fresh_db)
    port = free_port()
    env = _env(nats_url, fresh_db.replace(f":{target.port}/", f":{port}/"), EDA_CONNECT_TIMEOUT_S="1")
    run = asyncio.create_task(eda("migrate", "--timeout", "60", env=env))
    await asyncio.sleep(3)  # nothing listens: refused, retried (past EDA_CONNECT_TIMEOUT_S)
    assert not run.done(), run.result()
    async with _forwarding(port, (target.hostname or "127.0.0.1", target.port or 5432)):
        code, out, err = await run
    assert code == 0, err
    assert out.splitlines()[-1].startswith("applied: 0001_"), out


async def test_infra_cluster_prints_a_working_cluster_and_a_database(infra_cluster: Infra) -> None:
    assert [line.split("=", 1)[0] for line in infra_cluster.lines] == [
        "EDA_NATS_URL",
        "EDA_DATABASE_URL",
        "EDA_STREAM_REPLICAS",
    ]
    assert infra_cluster.printed["EDA_STREAM_REPLICAS"] == "3"
    assert len(infra_cluster.nats_urls) == 3
    for url in infra_cluster.nats_urls:  # every node answers on its own
        client = await nats.connect(url)
        await client.close()
    client = await nats.connect(infra_cluster.nats_urls)
    try:  # three replicas need three JetStream peers: a cluster, not three lone servers
        js = client.jetstream()
        info = await js.add_stream(StreamConfig(name="PROBE_R3", subjects=["probe.r3"], num_replicas=3))
        assert info.config.num_replicas == 3
        assert len(info.cluster.replicas or []) == 2
        await js.delete_stream("PROBE_R3")
    finally:
        await client.close()
    conn = await asyncpg.connect(infra_cluster.database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "eda"
    finally:
        await conn.close()
    assert "Traceback" not in infra_cluster.log.read_text(errors="replace")


async def test_failures_end_with_one_line_and_no_traceback(
    nats_url: str, fresh_db: str, short_tmp: Path
) -> None:
    closed = free_port()
    a_file = short_tmp / "a-file"
    a_file.write_text("")
    unreachable_db = f"postgresql://eda:s3cret@127.0.0.1:{closed}/eda"
    cases = {
        # (argv, env) → (exit code, text the output must contain)
        "rebuild": (
            ["rebuild", "--projection", "nope"],
            _env(nats_url, fresh_db),
            2,
            "unknown projection 'nope'",
        ),
        "snapshot-args": (
            ["snapshot", "--aggregate", "nope"],
            _env(nats_url, fresh_db),
            2,
            "nope",
        ),
        "snapshot": (
            ["snapshot"],
            _env(f"nats://127.0.0.1:{closed}", fresh_db, EDA_CONNECT_TIMEOUT_S="1"),
            1,
            f"eda snapshot: error: cannot connect to NATS at nats://127.0.0.1:{closed}: no answer within 1s",
        ),
        "migrate": (
            ["migrate"],
            _env(nats_url, unreachable_db, EDA_CONNECT_TIMEOUT_S="1"),
            1,
            f"eda migrate: error: cannot connect to PostgreSQL at postgresql://eda:***@127.0.0.1:{closed}/eda:",
        ),
        "infra": (
            ["infra", "--cluster", "3", "--data-dir", str(a_file / "data")],
            _env(nats_url, fresh_db),
            1,
            "eda infra: error: [Errno 20] Not a directory",
        ),
    }
    results = await asyncio.gather(*(eda(*argv, env=env) for argv, env, _, _ in cases.values()))
    for (name, (_, _, expected_code, text)), (code, out, err) in zip(cases.items(), results, strict=True):
        assert code == expected_code, (name, out, err)
        assert text in out + err, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        assert "s3cret" not in out + err, (name, err)
        if expected_code == 1:  # the last line says it all (a log line may come before it)
            assert err.strip().splitlines()[-1].startswith(text.split(":")[0] + ": error: "), (name, err)
