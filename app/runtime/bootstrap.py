"""The one-shot set-up runs before any role starts: ``eda provision`` (JetStream streams, bucket and
durable consumers, as the provisioning identity) and ``eda migrate`` (the PostgreSQL schema, as the
owner). The chart runs them as Jobs once per release; ``eda dev`` and ``eda infra`` run both on their
embedded servers (``prepare``), so roles started against them find everything in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.deploy.provision import Outcome, provision
from app.eventstore.connection import connect_nats
from app.process.role import retry_start
from app.readmodel.migrations import migrate_dsn
from app.settings import Settings

log = logging.getLogger(__name__)


async def provision_run(
    settings: Settings,
    replicas: int,
    report: Callable[[Outcome], None] = lambda _: None,
    *,
    timeout: float | None = None,
) -> list[Outcome]:
    """Connect as ``settings`` say and provision at ``replicas``, riding through a NATS or JetStream
    that is not up yet (a Job that starts with the cluster); ``TimeoutError`` after ``timeout`` s.
    ``ReplicaDowngrade`` is raised at once (it is not transient)."""
    async with asyncio.timeout(timeout):
        nc = await retry_start("provision: connect", lambda: connect_nats(settings, name="eda-provision"))
        try:
            return await retry_start("provision", lambda: provision(nc, replicas, report))
        finally:
            await nc.close()


async def prepare(settings: Settings) -> None:
    """``eda dev``/``eda infra``: provision at ``EDA_STREAM_REPLICAS`` and migrate, before any role."""
    outcomes = await provision_run(settings, settings.stream_replicas)
    changed = [str(o) for o in outcomes if o.action != "unchanged"]
    log.info("provisioned: %s", ", ".join(changed) if changed else "everything up to date")
    applied = await migrate_dsn(settings.database_url.get_secret_value(), settings.readmodel_schema)
    log.info("migrated: %s", ", ".join(applied) if applied else "up to date")
