"""The order projection's SQL: the set-based upsert of orders and insert of timeline rows (``unnest``),
the one-statement batch writes (plain, and guarded by the expected checkpoint), the checkpoint and the
views read back. Every statement takes the read-model ``schema`` (live or a rebuild's shadow).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import asyncpg

from app.readmodel.db import quote_ident
from app.readmodel.fold import PROJECTION, OrderView
from app.readmodel.rows import ORDER_COLUMNS, ORDER_TYPES, TIMELINE_COLUMNS, TIMELINE_TYPES, view_from_record

NOTIFY_CHANNEL = "eda_orders"


def _unnest(types: Sequence[str], start: int = 1) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=start))


def _upsert_sql(schema: str, where: str = "") -> str:
    cols = ", ".join(ORDER_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS[1:])
    return (
        f"INSERT INTO {quote_ident(schema)}.orders ({cols}) "
        f"SELECT u.order_id, u.user_id, u.items::jsonb, {', '.join('u.' + c for c in ORDER_COLUMNS[3:])} "
        f"FROM unnest({_unnest(ORDER_TYPES)}) AS u({cols}) {where}"
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}"
    )


def _timeline_sql(schema: str, start: int = 1, where: str = "") -> str:
    return (
        f"INSERT INTO {quote_ident(schema)}.order_events ({', '.join(TIMELINE_COLUMNS)}) "
        f"SELECT * FROM unnest({_unnest(TIMELINE_TYPES, start)}) AS x {where}"
    )


@functools.cache
def write_sql(schema: str, notify: bool) -> str:
    """Rows, timeline, checkpoint and NOTIFY of a batch as ONE statement (one round trip instead of four;
    data-modifying ``WITH`` parts always run, whether the main query reads them or not)."""
    n, t = len(ORDER_COLUMNS), len(TIMELINE_COLUMNS)
    projection, sequence, payloads = n + t + 1, n + t + 2, n + t + 3
    checkpoint = (
        f"INSERT INTO {quote_ident(schema)}.projection_checkpoints (projection, sequence, updated_at) "
        f"VALUES (${projection}, ${sequence}, now()) ON CONFLICT (projection) "
        "DO UPDATE SET sequence = EXCLUDED.sequence, updated_at = now()"
    )
    main = (
        f"SELECT pg_notify('{NOTIFY_CHANNEL}', p) FROM unnest(${payloads}::text[]) AS p"
        if notify
        else f"SELECT cardinality(${payloads}::text[])"
    )
    return (
        f"WITH o AS ({_upsert_sql(schema)} RETURNING 1), "
        f"t AS ({_timeline_sql(schema, n + 1)} RETURNING 1), "
        f"c AS ({checkpoint} RETURNING 1) {main}"
    )


@functools.cache
def guarded_write_sql(schema: str, rows: bool) -> str:
    """``apply_batch_fast``'s ONE autocommit statement: the checkpoint moves from the expected value
    (on the expected table) to the batch's last sequence, and only if it did are the rows and the
    timeline written and the NOTIFY sent; column ``moved`` says whether it did. The checkpoint table
    comes first, so its lock is taken before the other tables' names are resolved (a rebuild's swap
    holds that lock while it renames the schemas)."""
    n, t = len(ORDER_COLUMNS), len(TIMELINE_COLUMNS)
    base = n + t if rows else 0
    projection, last, expected, table, payloads = (base + i for i in range(1, 6))
    moved = (
        f"UPDATE {quote_ident(schema)}.projection_checkpoints SET sequence = ${last}, updated_at = now() "
        f"WHERE projection = ${projection} AND sequence = ${expected} AND tableoid = ${table}::oid "
        "RETURNING 1"
    )
    if not rows:
        return f"WITH c AS ({moved}) SELECT count(*) AS moved FROM c"
    only_if = "WHERE EXISTS (SELECT 1 FROM c) "
    return (
        f"WITH c AS ({moved}), "
        f"o AS ({_upsert_sql(schema, only_if)} RETURNING 1), "
        f"t AS ({_timeline_sql(schema, n + 1, only_if)} RETURNING 1) "
        f"SELECT (SELECT count(*) FROM c) AS moved, (SELECT count(pg_notify('{NOTIFY_CHANNEL}', p)) "
        f"FROM unnest(${payloads}::text[]) AS p {only_if}) AS notified"
    )


async def read_checkpoint(
    conn: asyncpg.Connection, schema: str, projection: str = PROJECTION, *, lock: bool = False
) -> int:
    """The projection's checkpoint (0 if none); ``lock`` takes the row lock for this transaction."""
    table = f"{quote_ident(schema)}.projection_checkpoints"
    suffix = " FOR UPDATE" if lock else ""
    value = await conn.fetchval(f"SELECT sequence FROM {table} WHERE projection = $1{suffix}", projection)
    if value is None and lock:
        await conn.execute(
            f"INSERT INTO {table} (projection, sequence) VALUES ($1, 0) ON CONFLICT DO NOTHING", projection
        )
        value = await conn.fetchval(f"SELECT sequence FROM {table} WHERE projection = $1{suffix}", projection)
    return int(value or 0)


async def set_checkpoint(
    conn: asyncpg.Connection, schema: str, sequence: int, projection: str = PROJECTION
) -> None:
    """Store the checkpoint (upsert)."""
    await conn.execute(
        f"INSERT INTO {quote_ident(schema)}.projection_checkpoints (projection, sequence, updated_at) "
        "VALUES ($1, $2, now()) ON CONFLICT (projection) "
        "DO UPDATE SET sequence = EXCLUDED.sequence, updated_at = now()",
        projection,
        sequence,
    )


async def load_views(conn: asyncpg.Connection, schema: str, order_ids: list[int]) -> dict[int, OrderView]:
    """The current rows of ``order_ids`` as views."""
    if not order_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {', '.join(ORDER_COLUMNS)} FROM {quote_ident(schema)}.orders "
        "WHERE order_id = ANY($1::bigint[])",
        order_ids,
    )
    return {r["order_id"]: view_from_record(r) for r in rows}


async def checkpoint_table(conn: asyncpg.Connection, schema: str) -> int:
    """The OID of ``schema``'s checkpoint table (it changes when a rebuild swaps schemas)."""
    name = f"{quote_ident(schema)}.projection_checkpoints"
    return int(await conn.fetchval("SELECT to_regclass($1)::oid", name))
