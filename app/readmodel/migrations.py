"""Schema migrations: numbered ``.sql`` files in ``app/readmodel/migrations/``, applied in order.

Two kinds of files:
- ``NNNN_<name>.sql`` — global objects (schema ``eda``: idempotency keys, ...), applied once.
- ``NNNN_readmodel_<name>.sql`` — read-model objects; ``{{schema}}`` stands for the quoted read-model
  schema. They are applied once per read-model schema, and ``create_readmodel_schema`` replays all of
  them against any schema (the rebuild engine builds its shadow schema with it).

``migrate`` runs once per release (``eda migrate``: the chart's migrate Job, ``eda dev``, ``eda infra``),
as the owner; it is safe to run concurrently: it holds a session-level ``pg_advisory_lock`` while it
reads ``eda.schema_migrations`` and applies what is missing, each file in its own transaction together
with its record. The roles never migrate: they log in without DDL rights and ``require_schema`` waits
(in ``retry_start``) until every migration this build ships is recorded — a newer schema is fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from app.readmodel.db import advisory_key, quote_ident

_FILE = re.compile(r"^(\d{4})_(.+)\.sql$")
LOCK_KEY = advisory_key("eda.migrations")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS eda;
CREATE TABLE IF NOT EXISTS eda.schema_migrations (
    scope      text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, version)
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def readmodel(self) -> bool:
        return self.name.startswith("readmodel_")

    def render(self, schema: str) -> str:
        """The SQL with ``{{schema}}`` replaced by the quoted ``schema``."""
        return self.sql.replace("{{schema}}", quote_ident(schema))


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, ordered by number."""
    folder = resources.files("app.readmodel") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise RuntimeError("two migrations share a number")
    return found


async def create_readmodel_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Create ``schema`` with every read-model table at the latest migration (for shadow rebuilds).
    Runs in the caller's transaction, records nothing."""
    for migration in load_migrations():
        if migration.readmodel:
            await conn.execute(migration.render(schema))


class SchemaNotMigrated(RuntimeError):
    """The database lacks migrations this build needs (``eda migrate`` has not run yet)."""


# What a role waits through at start-up (``retry_start(..., waiting_for=SCHEMA_WAITS)``): the schema not
# migrated yet, PostgreSQL starting up or restarting.
SCHEMA_WAITS: tuple[type[Exception], ...] = (
    SchemaNotMigrated,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
)


def _scope(migration: Migration, schema: str) -> str:
    return f"readmodel:{schema}" if migration.readmodel else "eda"


async def pending_migrations(conn: asyncpg.Connection, schema: str) -> list[str]:
    """The shipped migrations not yet recorded as applied (read-only: needs SELECT only)."""
    if await conn.fetchval("SELECT to_regclass('eda.schema_migrations')") is None:
        return [f"{m.version:04d}_{m.name}" for m in load_migrations()]
    rows = await conn.fetch("SELECT scope, version FROM eda.schema_migrations")
    done = {(r["scope"], r["version"]) for r in rows}
    return [
        f"{m.version:04d}_{m.name}" for m in load_migrations() if (_scope(m, schema), m.version) not in done
    ]


async def require_schema(dsn: str, schema: str) -> None:
    """Return once every shipped migration is applied; ``SchemaNotMigrated`` (saying what is missing and
    what to run) otherwise. Roles call it at start-up through ``retry_start``."""
    quote_ident(schema)  # validates the name
    conn = await asyncpg.connect(dsn)
    try:
        missing = await pending_migrations(conn, schema)
    finally:
        await conn.close()
    if missing:
        raise SchemaNotMigrated(
            f"database schema not migrated ({len(missing)} missing, first {missing[0]}): run `eda migrate` "
            "(in Kubernetes: the chart's migrate Job)"
        )


async def migrate(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Apply missing migrations (global ones, and read-model ones for ``schema``); returns their names."""
    quote_ident(schema)
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        # Bootstrap only when missing: its CREATE ... IF NOT EXISTS still needs DDL rights, which the
        # projector's and api's database roles lack (they only check that nothing is left to apply).
        if await conn.fetchval("SELECT to_regclass('eda.schema_migrations')") is None:
            await conn.execute(_BOOTSTRAP)
        for migration in load_migrations():
            scope = _scope(migration, schema)
            done = await conn.fetchval(
                "SELECT 1 FROM eda.schema_migrations WHERE scope = $1 AND version = $2",
                scope,
                migration.version,
            )
            if done:
                continue
            async with conn.transaction():
                await conn.execute(migration.render(schema))
                await conn.execute(
                    "INSERT INTO eda.schema_migrations (scope, version, name) VALUES ($1, $2, $3)",
                    scope,
                    migration.version,
                    migration.name,
                )
            applied.append(f"{migration.version:04d}_{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied


async def migrate_dsn(dsn: str, schema: str) -> list[str]:
    """``migrate`` on a short-lived connection (``eda migrate``, ``eda dev``, ``eda infra``)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema)
    finally:
        await conn.close()
