"""The embedded dev/test stack: nats-server (``app.dev.nats``) and PostgreSQL (``app.dev.postgres``)
started together under one data dir, and the ``eda infra`` loop. Logs go to files in the data dir; a
failed start raises with the log tail."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from app.dev.nats import NatsServer, embedded_nats
from app.dev.postgres import Postgres, embedded_postgres
from app.process.signals import stop_signals


@contextlib.asynccontextmanager
async def embedded_stack(
    data_dir: Path, *, nats_port: int | None = None, pg_port: int | None = None, fast: bool = False
) -> AsyncIterator[tuple[NatsServer, Postgres]]:
    """Both servers, started concurrently; if one fails the other is stopped."""
    async with contextlib.AsyncExitStack() as stack:
        results = await asyncio.gather(
            stack.enter_async_context(embedded_nats(data_dir, port=nats_port)),
            stack.enter_async_context(embedded_postgres(data_dir, port=pg_port, fast=fast)),
            return_exceptions=True,
        )
        nats, pg = results
        for result in results:
            if isinstance(result, BaseException):
                raise result
        assert isinstance(nats, NatsServer)
        assert isinstance(pg, Postgres)
        yield nats, pg


# What ``eda infra`` runs once its servers answer, before it prints their URLs: ``await prepare(nats_url,
# dsn)`` (the CLI provisions and migrates; ``--bare`` passes none).
Prepare = Callable[[str, str], Awaitable[None]]


async def serve_infra(data_dir: Path, prepare: Prepare | None = None) -> None:
    """``eda infra``: run both servers, ``await prepare(nats_url, dsn)``, print their URLs, wait for
    SIGINT/SIGTERM, stop cleanly."""
    with stop_signals() as stopping:
        async with embedded_stack(data_dir) as (nats, pg):
            if prepare is not None:
                await prepare(nats.url, pg.dsn)
            print(f"EDA_NATS_URL={nats.url}", flush=True)
            print(f"EDA_DATABASE_URL={pg.dsn}", flush=True)
            for note in pg.notes:  # stderr: stdout is KEY=value lines for scripts
                print(note, file=sys.stderr, flush=True)
            await stopping.wait()
