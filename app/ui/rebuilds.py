"""Running projection rebuilds as PostgreSQL's locks and schemas show them — a cross-check of the run
records in ``eda.maintenance_runs`` (``app.readmodel.runs``), which hold the real progress and history
of every rebuild and snapshot run by the CLI or the operator.

A rebuild holds the advisory lock ``eda.rebuild.<projection>`` and fills a shadow schema
``<live>_rebuild_<id>`` until it swaps it in (see ``app.readmodel.rebuild``). Progress here is the
shadow timeline's row count against the live one's — an estimate; the run records have the truth.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app.readmodel.db import advisory_key, quote_ident
from app.readmodel.rebuild import PROJECTIONS

K8S_NOTE = "The ProjectionRebuild and Snapshot resources themselves: kubectl get prb,snap -A"


def _lock_ids(key: int) -> tuple[int, int]:
    """``pg_locks`` shows a bigint advisory key as (classid, objid): its high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


async def _locked(conn: asyncpg.Connection, projection: str) -> bool:
    classid, objid = _lock_ids(advisory_key(f"eda.rebuild.{projection}"))
    held = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
        classid,
        objid,
    )
    return bool(held)


async def _rows(conn: asyncpg.Connection, schema: str) -> int | None:
    try:
        value = await conn.fetchval(f"SELECT count(*) FROM {quote_ident(schema)}.order_events")
    except asyncpg.UndefinedTableError:
        return None
    return int(value)


async def running_rebuilds(pool: asyncpg.Pool, schema: str) -> dict[str, Any]:
    """Rebuilds in progress against ``schema`` (lock holders and shadow schemas with their progress)."""
    prefix = schema.replace("_", "\\_") + "\\_rebuild\\_%"
    async with pool.acquire() as conn:
        shadows = [
            r["nspname"]
            for r in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 ORDER BY nspname", prefix
            )
        ]
        locked = [p for p in sorted(PROJECTIONS) if await _locked(conn, p)]
        live = await _rows(conn, schema)
        items = []
        for shadow in shadows:
            done = await _rows(conn, shadow)
            percent = min(100, int(100 * done / live)) if done is not None and live else None
            items.append({"shadow_schema": shadow, "timeline_rows": done, "percent_estimate": percent})
    return {"available": True, "locked_projections": locked, "running": items, "note": K8S_NOTE}
