"""PostgreSQL least privilege (migrations ``0003_roles.sql`` and ``0004_readmodel_grants.sql``): login
users in ``eda_projector`` and ``eda_api`` get exactly their privileges; the projector applies events
under its own user; grants survive a rebuild's schema swap and cover tables added later; every role's
start-up ``migrate`` works without DDL rights once the migrator has run; the roles never migrate: the API
waits (saying what to run) until `eda migrate` has applied every migration, and checks it as its own
login."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from app.api.main import create_app
from app.domain.order import ORDER, CreateOrder, MarkOrderPaid, OrderItem
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import (
    SchemaNotMigrated,
    create_readmodel_schema,
    migrate,
    migrate_dsn,
    require_schema,
)
from app.readmodel.projector import Projector
from app.readmodel.queries import get_order
from app.service.handler import CommandHandler
from app.settings import Settings
from tests.support.eventually import eventually

SCHEMA = "readmodel"
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="pg-roles")
DENIED = asyncpg.InsufficientPrivilegeError


@dataclass(frozen=True)
class Logins:
    admin: str
    projector: str
    api: str


@pytest.fixture
async def logins(fresh_db: str) -> AsyncIterator[Logins]:
    """The database migrated by the superuser, plus two fresh login users mapped onto the groups."""
    await migrate_dsn(fresh_db, SCHEMA)
    suffix = uuid.uuid4().hex[:8]
    users = {"projector": f"projector_{suffix}", "api": f"api_{suffix}"}
    admin = await asyncpg.connect(fresh_db)
    try:
        for group, user in users.items():
            await admin.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE eda_{group}')
        yield Logins(
            admin=fresh_db,
            projector=fresh_db.replace("postgres@", f"{users['projector']}@"),
            api=fresh_db.replace("postgres@", f"{users['api']}@"),
        )
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)",
            list(users.values()),
        )
        for user in users.values():
            await admin.execute(f'DROP OWNED BY "{user}"')
            await admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        await admin.close()


@contextlib.asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await db.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def test_group_roles_exist_as_nologin(logins: Logins) -> None:
    async with connected(logins.admin) as conn:
        rows = await conn.fetch(
            "SELECT rolname, rolcanlogin FROM pg_roles "
            "WHERE rolname IN ('eda_migrator', 'eda_projector', 'eda_api')"
        )
        assert {r["rolname"]: r["rolcanlogin"] for r in rows} == dict.fromkeys(
            ("eda_migrator", "eda_projector", "eda_api"), False
        )
        owners = await conn.fetch(
            "SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace "
            "WHERE nspname IN ('eda', $1)",
            SCHEMA,
        )
        assert {r["owner"] for r in owners} == {"eda_migrator"}


async def test_projector_has_dml_but_no_ddl_and_no_idempotency(logins: Logins) -> None:
    async with connected(logins.projector) as conn:
        assert await migrate(conn, SCHEMA) == []  # the start-up migrate needs no DDL once applied
        await conn.execute(
            f"INSERT INTO {SCHEMA}.projection_checkpoints (projection, sequence) VALUES ('x', 1)"
        )
        await conn.execute(f"UPDATE {SCHEMA}.projection_checkpoints SET sequence = 2 WHERE projection = 'x'")
        await conn.execute(f"DELETE FROM {SCHEMA}.projection_checkpoints WHERE projection = 'x'")
        for statement in (
            f"DROP TABLE {SCHEMA}.orders",
            f"ALTER TABLE {SCHEMA}.orders ADD COLUMN evil text",
            f"TRUNCATE {SCHEMA}.order_events",
            f"CREATE TABLE {SCHEMA}.evil (x int)",
            f"DROP SCHEMA {SCHEMA} CASCADE",
            "SELECT * FROM eda.idempotency_keys",
            "INSERT INTO eda.idempotency_keys (key, fingerprint, state) VALUES ('k', 'f', 'pending')",
            "DELETE FROM eda.schema_migrations",
        ):
            with pytest.raises(DENIED):
                await conn.execute(statement)


async def test_api_reads_orders_and_writes_idempotency_keys_only(logins: Logins) -> None:
    async with connected(logins.admin) as admin:
        await admin.execute(
            f"INSERT INTO {SCHEMA}.orders VALUES "
            "(1, 7, '[]', 10, 'USD', 'created', 1, now(), now(), NULL, NULL, NULL, 1, '7')"
        )
    async with connected(logins.api) as conn:
        assert await migrate(conn, SCHEMA) == []
        assert await conn.fetchval(f"SELECT status FROM {SCHEMA}.orders WHERE order_id = 1") == "created"
        await conn.execute(
            "INSERT INTO eda.idempotency_keys (key, fingerprint, state) VALUES ('k', 'f', 'pending')"
        )
        await conn.execute("UPDATE eda.idempotency_keys SET state = 'completed' WHERE key = 'k'")
        await conn.execute("DELETE FROM eda.idempotency_keys WHERE key = 'k'")
        for statement in (
            f"UPDATE {SCHEMA}.orders SET status = 'paid' WHERE order_id = 1",
            f"INSERT INTO {SCHEMA}.projection_checkpoints (projection, sequence) VALUES ('x', 1)",
            f"DELETE FROM {SCHEMA}.orders",
            f"DROP TABLE {SCHEMA}.orders",
            "DROP TABLE eda.idempotency_keys",
            "ALTER TABLE eda.idempotency_keys ADD COLUMN evil text",
            # no DDL anywhere: not in public (PostgreSQL >= 15 revokes CREATE there), no schema of its own
            "CREATE TABLE public.evil (x int)",
            "CREATE SCHEMA evil",
            "CREATE TABLE eda.evil (x int)",
        ):
            with pytest.raises(DENIED):
                await conn.execute(statement)


async def test_grants_survive_a_rebuild_swap_and_cover_later_tables(logins: Logins) -> None:
    shadow = f"{SCHEMA}_rebuild_sec"
    async with connected(logins.admin) as admin, admin.transaction():
        await create_readmodel_schema(admin, shadow)  # what the rebuild engine does
        await admin.execute(f"ALTER SCHEMA {SCHEMA} RENAME TO {SCHEMA}_old")
        await admin.execute(f"ALTER SCHEMA {shadow} RENAME TO {SCHEMA}")
        await admin.execute(f"DROP SCHEMA {SCHEMA}_old CASCADE")
        await admin.execute(f"CREATE TABLE {SCHEMA}.added_later (x int)")  # a later migration
    async with connected(logins.projector) as conn:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.projection_checkpoints (projection, sequence) VALUES ('x', 1)"
        )
        await conn.execute(f"INSERT INTO {SCHEMA}.added_later VALUES (1)")
        with pytest.raises(DENIED):
            await conn.execute(f"DROP TABLE {SCHEMA}.orders")
    async with connected(logins.api) as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.added_later") == 1
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.orders") == 0
        with pytest.raises(DENIED):
            await conn.execute(f"UPDATE {SCHEMA}.projection_checkpoints SET sequence = 0")


async def test_concurrent_migrations_of_several_databases(logins: Logins, fresh_db: str) -> None:
    """Roles are cluster-wide, the migration lock is per database: migrating new databases at once works."""
    admin = await asyncpg.connect(logins.admin)
    names = [f"sec_{uuid.uuid4().hex[:10]}" for _ in range(3)]
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        dsns = [fresh_db.rsplit("/", 1)[0] + f"/{name}" for name in names]
        results = await asyncio.gather(*(migrate_dsn(dsn, SCHEMA) for dsn in dsns))
        assert all(len(r) == len(results[0]) > 0 for r in results)
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_projector_applies_events_as_eda_projector(logins: Logins, nc: NATS) -> None:
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    repo = CommandHandler(store, ORDER)
    items = (OrderItem(product_id=1, quantity=2),)
    for i in (1, 2):
        await repo.execute(
            i, CreateOrder(order_id=i, user_id=7, items=items, amount=Decimal("10.00"), at=T0), META
        )
    await repo.execute(2, MarkOrderPaid(order_id=2, payment_id="p-2", at=T0), META)
    projector = Projector(nc, store.codec, logins.projector, SCHEMA, retry_s=0.1)
    task = asyncio.create_task(projector.run())
    try:
        async with connected(logins.api) as conn:

            async def paid() -> bool:
                assert not task.done(), task.exception()
                two = await get_order(conn, SCHEMA, 2)
                return two is not None and two.status == "paid"

            await eventually(paid, timeout=15, what="the projector to catch up")
            assert (await get_order(conn, SCHEMA, 1)) is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


async def test_require_schema_names_what_is_missing_and_works_as_the_api_login(
    fresh_db: str, logins: Logins
) -> None:
    with pytest.raises(SchemaNotMigrated, match=r"run `eda migrate`"):
        await require_schema(fresh_db.rsplit("/", 1)[0] + "/postgres", SCHEMA)  # never migrated
    await require_schema(logins.api, SCHEMA)  # `logins` migrated it: SELECT on schema_migrations suffices
    with pytest.raises(SchemaNotMigrated, match="0002_readmodel_orders"):
        await require_schema(logins.api, "readmodel_other")  # another read-model schema: not migrated


async def test_the_api_waits_for_the_migrate_job_then_starts(
    nats_url: str, js_clean: None, fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role started before the chart's migrate Job finished: it waits, saying why, and starts after."""
    app = create_app(Settings(nats_url=nats_url, database_url=fresh_db, auth_mode="disabled"))  # type: ignore[arg-type]
    started = asyncio.Event()

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            started.set()

    task = asyncio.create_task(lifespan())
    try:
        await asyncio.sleep(1.5)
        assert not started.is_set()
        assert not task.done()
        assert "database schema not migrated" in caplog.text
        assert "run `eda migrate`" in caplog.text
        await migrate_dsn(fresh_db, SCHEMA)
        await asyncio.wait_for(started.wait(), 15)
    finally:
        await asyncio.wait_for(task, 15)
