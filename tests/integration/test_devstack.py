"""The embedded servers answer, keep data across restarts, and ``eda infra`` runs and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import nats
import pytest

from app.dev.nats import NatsServer
from app.dev.postgres import Postgres, embedded_postgres


async def test_nats_answers_jetstream(nats_server: NatsServer, js_clean: None) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.streams == 6  # js_clean emptied it, then provisioned EVENTS .. DLQ and the bucket
    finally:
        await nc.close()


async def test_postgres_answers(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "eda"
    finally:
        await conn.close()


async def test_fresh_db_is_empty_and_separate(fresh_db: str, postgres: Postgres) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("select current_database()") != "eda"
        assert await conn.fetchval("select count(*) from pg_tables where schemaname = 'public'") == 0
    finally:
        await conn.close()


async def _insert_and_count(dsn: str, value: int | None) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("create table if not exists t (v int)")
        if value is not None:
            await conn.execute("insert into t values ($1)", value)
        return int(await conn.fetchval("select count(*) from t"))
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_data_survives_restart(short_tmp: Path, mode: str) -> None:
    async with embedded_postgres(short_tmp) as pg:
        port = pg.port
        assert await _insert_and_count(pg.dsn, 1) == 1
        await pg.stop(mode)  # type: ignore[arg-type]
        assert pg.pid is None
        await pg.start()  # same data dir, same port
        assert pg.port == port
        assert await _insert_and_count(pg.dsn, None) == 1
    # A new handle on the same data dir reuses it (no second initdb).
    async with embedded_postgres(short_tmp, port=port) as pg2:
        assert await _insert_and_count(pg2.dsn, 2) == 2


def _eda_command() -> list[str]:
    # Through the typer group explicitly: while `app.cli` has a single command, typer collapses the
    # console script into that command and `eda infra` would be rejected as an extra argument.
    code = "import typer.main, app.cli as c; typer.main.get_group(c.cli)(prog_name='eda')"
    return [sys.executable, "-c", code]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_eda_infra_prints_urls_and_stops_on_sigint(short_tmp: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_eda_command(),
        "infra",
        "--data-dir",
        str(short_tmp),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip() for _ in range(2)]
        env = dict(line.split("=", 1) for line in lines)
        assert set(env) == {"EDA_NATS_URL", "EDA_DATABASE_URL"}
        assert env["EDA_NATS_URL"].startswith("nats://127.0.0.1:")
        assert env["EDA_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")

        nc = await nats.connect(env["EDA_NATS_URL"])
        try:  # provisioned before the URLs are printed: roles started against it find their streams
            assert (await nc.jetstream().stream_info("EVENTS")).config.num_replicas == 1
        finally:
            await nc.close()
        conn = await asyncpg.connect(env["EDA_DATABASE_URL"])
        try:  # and migrated
            assert await conn.fetchval("SELECT to_regclass('readmodel.orders') IS NOT NULL")
        finally:
            await conn.close()

        pg_pid = int((short_tmp / "pg" / "postmaster.pid").read_text().split()[0])
        assert _pid_alive(pg_pid)

        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert not _pid_alive(pg_pid)
        assert not (short_tmp / "pg" / "postmaster.pid").exists()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection(*_host_port(env["EDA_NATS_URL"])), 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)
