"""The console search (``/ui/api/orders?q=``) on an indexed read model (issue 17): migration 0020's
trigram index serves the substring search the console runs (EXPLAIN of the very SQL, with the plan
mode the console sets), finds what it should, and refuses text too short for an index."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from app.ui.orders import OrderQuery, list_orders, list_sql, search_problem

SCHEMA = "readmodel"
ROWS = 30_000


async def _seed(pool: asyncpg.Pool) -> None:
    await pool.execute(
        f"""INSERT INTO {SCHEMA}.orders (order_id, user_id, owner, items, amount, currency, status, version,
              created_at, updated_at, payment_id, tracking_number, cancel_reason, last_sequence)
            SELECT i, i % 100, (i % 100)::text, '[]', 1, 'USD',
                   CASE WHEN i % 10 = 0 THEN 'cancelled' ELSE 'shipped' END, 3, now(), now(),
                   'pay-' || md5(i::text), 'TRK' || lpad(i::text, 9, '0'),
                   CASE WHEN i % 10 = 0 THEN 'Customer changed mind #' || i END, i
              FROM generate_series(1, {ROWS}) i"""
    )
    await pool.execute(f"VACUUM ANALYZE {SCHEMA}.orders")  # as autovacuum would: GIN pending list merged


def _index_scans(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _index_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _index_scans(item)
    return found


async def test_the_search_uses_the_trigram_index_and_finds_substrings(pool: asyncpg.Pool) -> None:
    await _seed(pool)
    needle = (await pool.fetchval(f"SELECT payment_id FROM {SCHEMA}.orders WHERE order_id = 12345"))[8:16]
    sql, args = list_sql(SCHEMA, OrderQuery(q=needle.upper()))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        for _ in range(7):  # past the point where a cached generic plan could take over
            await conn.fetch(sql, *args)
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
    assert "orders_search_trgm" in _index_scans(plan), json.dumps(plan, indent=1)

    page = await list_orders(pool, SCHEMA, OrderQuery(q=needle.upper()))
    assert [o["order_id"] for o in page["items"]] == [12345]  # case-insensitive, mid-string
    reasons = await list_orders(pool, SCHEMA, OrderQuery(q="changed MIND #299", limit=3))
    assert [o["order_id"] for o in reasons["items"]] == [29990, 29980, 29970]
    assert reasons["next_cursor"] == "29970"
    tracking = await list_orders(pool, SCHEMA, OrderQuery(q="trk00000777", status="shipped"))
    assert [o["order_id"] for o in tracking["items"]] == list(range(7779, 7770, -1))  # not 7770: cancelled
    assert (await list_orders(pool, SCHEMA, OrderQuery(q="mind_#1%")))["items"] == []  # _ and % literal


def test_text_shorter_than_a_trigram_is_refused_ids_are_not() -> None:
    assert search_problem("ab") is not None
    assert search_problem(" x ") is not None
    for fine in ("", "7", "42", "abc", "TRK"):
        assert search_problem(fine) is None, fine
