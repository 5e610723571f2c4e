"""Schema migrations: numbered ``.sql`` files in ``app/readmodel/migrations/``, applied in order.

Two kinds of files:
- ``NNNN_<name>.sql`` — global objects (schema ``eda``: idempotency keys, ...), applied once.
- ``NNNN_readmodel_<name>.sql`` — read-model objects; ``{{schema}}`` stands for the quoted read-model
  schema. They are applied once per read-model schema, and ``create_readmodel_schema`` replays all of
  them against any schema (the rebuild engine builds its shadow schema with it).

``migrate`` is safe to run concurrently from every role at start-up: it holds a session-level
``pg_advisory_lock`` while it reads ``eda.schema_migrations`` and applies what is missing, each file in
its own transaction together with its record.
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
            scope = f"readmodel:{schema}" if migration.readmodel else "eda"
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
    """``migrate`` on a short-lived connection (``eda migrate`` and role start-up)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema)
    finally:
        await conn.close()
