"""Role composition: each role as a coroutine, and ``eda dev`` = all of them in one process.

- the API: ``app.runtime.server.api_server`` (uvicorn with the drain, graceful shutdown and load limits).
- ``projector_role``: the order projector (+ the health server on ``EDA_HEALTH_PORT`` when alone).
- ``background_roles(settings)``: every non-API role of ``eda dev``; add the saga and the workers here.
- ``dev(data_dir, port)``: embedded NATS + PostgreSQL (data under ``data_dir``, ports remembered in
  ``data_dir/ports.json`` so a restart keeps the same URLs; fsync on), provisioned and migrated
  (``app.runtime.bootstrap``), then the API and the background roles. SIGINT/SIGTERM stop the API
  gracefully, then the roles, then the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import open_event_store
from app.eventstore.required import require_stream
from app.ops.gauges import PlatformGauges
from app.process.gctune import tune_gc
from app.process.health import CheckResult, serve_health
from app.process.role import retry_start
from app.process.signals import stop_signals
from app.readmodel.deadletter import DLQ_STREAM, RetryPolicy
from app.readmodel.migrations import SCHEMA_WAITS, require_schema
from app.readmodel.projector import Projector, consumer_lag
from app.runtime.bootstrap import prepare
from app.runtime.server import ApiServer, api_server
from app.settings import Settings
from app.telemetry import in_role

log = logging.getLogger(__name__)

Role = Coroutine[Any, Any, None]


async def open_projector(settings: Settings) -> tuple[NATS, Projector]:
    """Connect and check what the projector needs (the provisioned ``EVENTS`` and ``DLQ`` streams, the
    migrated schema), each retried with a clear message until it is there."""
    dsn, schema = settings.database_url.get_secret_value(), settings.readmodel_schema
    nc = await retry_start("projector: connect", lambda: connect_nats(settings, name="eda-projector"))
    try:
        store = await retry_start("projector: event store", lambda: open_event_store(nc, settings))
        await retry_start("projector: dead-letter stream", lambda: require_stream(nc.jetstream(), DLQ_STREAM))
        await retry_start(
            "projector: database", lambda: require_schema(dsn, schema), waiting_for=SCHEMA_WAITS
        )
    except BaseException:
        await nc.close()
        raise
    poison = RetryPolicy.parse(settings.projector_max_deliver, settings.projector_backoff)
    return nc, Projector(nc, store.codec, dsn, schema, batch=settings.projector_batch, poison=poison)


async def projector_role(settings: Settings, *, health: bool = True) -> None:
    """Run the order projector until cancelled (with ``health``: /livez while it starts, /readyz once
    it runs)."""
    opened: list[tuple[NATS, Projector]] = []

    async def checks() -> dict[str, CheckResult]:
        if not opened:
            return {"projector": CheckResult(False, "starting (waiting for NATS, streams, schema)")}
        nc, projector = opened[0]
        lag = await consumer_lag(nc)
        st = projector.status
        role = "leader" if st.leader else "standby"
        return {
            "nats": CheckResult(nc.is_connected, "connected" if nc.is_connected else "disconnected"),
            "projector": CheckResult(
                st.leader or st.last_error is None,
                f"{role}, checkpoint {st.checkpoint}, lag {lag}, dead letters {st.dead_letters}",
            ),
        }

    async with contextlib.AsyncExitStack() as stack:
        if health:
            await stack.enter_async_context(serve_health(settings.health_port, checks))
        nc, projector = await open_projector(settings)
        stack.push_async_callback(nc.close)
        opened.append((nc, projector))
        tune_gc(settings.gc_gen0_threshold)
        # JetStream and saga health gauges live with the projection lag (app.ops.gauges)
        gauges = asyncio.create_task(PlatformGauges(nc).run(), name="platform-gauges")
        stack.callback(gauges.cancel)
        await projector.run()


def background_roles(settings: Settings) -> list[Role]:
    """The non-API roles of ``eda dev``, each under its own telemetry name (``eda-saga``, ...); each
    worker separately, as ``eda worker <name>`` runs in the cluster."""
    from app.runtime.background import saga_role, workers_role
    from app.workers.commands import WORKERS

    return [
        in_role("projector", projector_role(settings, health=False)),
        in_role("saga", saga_role(settings)),
        *(in_role(f"worker-{name}", workers_role(settings, (name,))) for name in WORKERS),
    ]


def _ports(data_dir: Path) -> dict[str, int]:
    try:
        raw = json.loads((data_dir / "ports.json").read_text())
        return {k: int(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError):
        return {}


async def run_until_signal(server: ApiServer, roles: list[Role]) -> None:
    """Serve the API and run ``roles`` until SIGINT/SIGTERM or until one of them fails; the API stops
    first, gracefully (``app.runtime.server``), then the roles."""
    with stop_signals() as stopping:
        api = asyncio.create_task(in_role("api", server.serve()), name="api")
        tasks = [asyncio.create_task(role) for role in roles]
        stop = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait([api, stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and not task.cancelled() and task.exception() is not None:
                    log.error("role %s failed", task.get_name(), exc_info=task.exception())
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(api), server.stop_within_s)
            for task in [*tasks, stop, api]:
                task.cancel()
            await asyncio.gather(*tasks, stop, api, return_exceptions=True)


async def dev(data_dir: Path, *, host: str = "127.0.0.1", port: int = 8082) -> None:
    """``eda dev``: the whole system in one process on embedded servers and the dev OIDC provider."""
    from app.dev.idp import banner, dev_identity
    from app.dev.issuer import AUDIENCE, CONSOLE_CLIENT
    from app.dev.stack import embedded_stack

    known = _ports(data_dir)
    async with (
        embedded_stack(data_dir, nats_port=known.get("nats"), pg_port=known.get("postgres")) as (nats, pg),
        dev_identity(data_dir, port, known.get("idp")) as idp,
    ):
        ports = {"nats": nats.port, "postgres": pg.port, "idp": idp.port}
        (data_dir / "ports.json").write_text(json.dumps(ports))
        os.environ["EDA_NATS_URL"], os.environ["EDA_DATABASE_URL"] = nats.url, pg.dsn
        os.environ["EDA_AUTH_ISSUER"], os.environ["EDA_AUTH_AUDIENCE"] = idp.issuer, AUDIENCE
        os.environ.setdefault("EDA_UI_OIDC_CLIENT_ID", CONSOLE_CLIENT)  # the console logs in at the issuer
        os.environ.setdefault("EDA_DEFAULT_STOCK", "1000")  # never-set products start with 1000 units in dev
        os.environ.setdefault("EDA_DEFAULT_PRICE", "99.99")  # ... and cost 99.99 (the seed's 2 x 99.99)
        os.environ.setdefault("EDA_UI_ENABLED", "true")  # the web console at /ui is on in dev
        settings = Settings()
        api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        await prepare(settings)  # streams, bucket, consumers; the schema: before any role starts
        print(f"EDA_NATS_URL={nats.url}", flush=True)
        print(f"EDA_DATABASE_URL={pg.dsn}", flush=True)
        for note in pg.notes:  # as root: how PostgreSQL runs without touching the user's files
            print(note, flush=True)
        print(await asyncio.to_thread(banner, idp, api_url), flush=True)
        print(f"API on http://{host}:{port} (docs: /docs, console: /ui) — Ctrl-C stops", flush=True)
        await run_until_signal(api_server(settings, host, port, dev=True), background_roles(settings))
