"""The console's Health page data: projection lag (with a short history for the chart), JetStream
consumer pending counts, snapshot bucket, rebuild and snapshot runs (``eda.maintenance_runs``, written by
the CLI and the operator) and dead-letter streams — each part degrading to an
``available: false`` note instead of failing the page.

Projection lag is the projector's durable consumer ``projector-<projection>`` backlog (pending + not yet
acknowledged) when that consumer exists, else the stream-sequence gap between the stream's last event and
the projection's checkpoint. ``LagHistory`` keeps the samples taken while someone looks at the page
(one per ``HISTORY_STEP_S`` at most, ``HISTORY_S`` of them), so the chart needs no background task.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.api import StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError

from app.eventstore.jetstream import STREAM
from app.eventstore.snapshots import BUCKET
from app.ops import jetstream
from app.readmodel import deadletter
from app.readmodel.db import quote_ident
from app.readmodel.runs import STALE_AFTER_S, list_runs
from app.ui.rebuilds import K8S_NOTE, running_rebuilds

HISTORY_S = 600.0
HISTORY_STEP_S = 1.0
DLQ_RECENT = 10
_PREVIEW = 400
_SAFE_HEADERS = (
    "Nats-Msg-Id",
    "Eda-Type",
    "Eda-Reason",
    "Eda-Error",
    "Eda-Deliveries",
    "Eda-Original-Subject",
    "Eda-Original-Sequence",
    "Eda-Consumer",
)


@dataclass
class LagHistory:
    """Recent lag samples per projection: ``(unix time, lag)``."""

    samples: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    last: float = 0.0

    def add(self, lags: dict[str, int], now: float) -> None:
        if now - self.last < HISTORY_STEP_S:
            return
        self.last = now
        for name, lag in lags.items():
            points = self.samples.setdefault(name, deque(maxlen=int(HISTORY_S / HISTORY_STEP_S)))
            points.append((now, lag))
        for points in self.samples.values():
            while points and points[0][0] < now - HISTORY_S:
                points.popleft()

    def series(self) -> dict[str, list[list[float]]]:
        return {name: [[round(t, 3), lag] for t, lag in pts] for name, pts in self.samples.items()}


async def _consumers(js: JetStreamContext, streams: list[StreamInfo]) -> list[dict[str, Any]]:
    return [
        {
            "stream": c.stream,
            "name": c.name,
            "durable": c.durable,
            "filter": c.filter,
            "num_pending": c.pending,
            "num_ack_pending": c.ack_pending,
            "num_redelivered": c.redelivered,
            "num_waiting": c.waiting,
            "last_active": c.last_active,
        }
        for c in await jetstream.consumers(js, streams)
    ]


async def _checkpoints(pool: asyncpg.Pool, schema: str) -> list[asyncpg.Record]:
    try:
        rows: list[asyncpg.Record] = await pool.fetch(
            f"SELECT projection, sequence, updated_at FROM {quote_ident(schema)}.projection_checkpoints "
            "ORDER BY projection"
        )
    except asyncpg.UndefinedTableError:
        return []
    return rows


def _projections(
    rows: list[asyncpg.Record], consumers: list[dict[str, Any]], last_seq: int
) -> list[dict[str, Any]]:
    by_name = {(c["stream"], c["name"]): c for c in consumers}
    out = []
    for row in rows:
        consumer = by_name.get((STREAM, f"projector-{row['projection']}"))
        gap = max(0, last_seq - int(row["sequence"]))
        backlog = consumer["num_pending"] + consumer["num_ack_pending"] if consumer else None
        out.append(
            {
                "projection": row["projection"],
                "checkpoint": int(row["sequence"]),
                "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None,
                "stream_last_sequence": last_seq,
                "sequence_gap": gap,
                "lag": backlog if backlog is not None else gap,
                "lag_source": "consumer" if backlog is not None else "sequence gap",
            }
        )
    return out


async def _snapshots(js: JetStreamContext) -> dict[str, Any]:
    try:
        info = await js.stream_info(f"KV_{BUCKET}")
    except NotFoundError:
        return {"available": False, "note": "no snapshot bucket yet"}
    state = info.state
    return {
        "available": True,
        "bucket": BUCKET,
        "revisions": state.messages,
        "bytes": state.bytes,
        "last_sequence": state.last_seq,
    }


async def _dead_letters(js: JetStreamContext, streams: list[StreamInfo]) -> dict[str, Any]:
    dlqs = [s for s in streams if jetstream.is_dead_letter(s)]
    if not dlqs:
        return {"available": False, "note": "no dead-letter stream is configured", "messages": []}
    messages: list[dict[str, Any]] = []
    for info in dlqs:
        async for seq, raw in deadletter.newest_first(js, info, DLQ_RECENT - len(messages)):
            headers = raw.headers or {}
            messages.append(
                {
                    "stream": info.config.name,
                    "sequence": seq,
                    "subject": raw.subject,
                    "time": raw.time,
                    "headers": {k: v for k, v in headers.items() if k in _SAFE_HEADERS},
                    "preview": (raw.data or b"")[:_PREVIEW].decode("utf-8", "replace"),
                }
            )
    return {"available": True, "streams": [s.config.name for s in dlqs], "messages": messages}


async def _rebuilds(pool: asyncpg.Pool, schema: str) -> dict[str, Any]:
    try:
        return await running_rebuilds(pool, schema)
    except (asyncpg.PostgresError, OSError) as exc:
        return {"available": False, "note": f"{K8S_NOTE} (PostgreSQL: {type(exc).__name__})"}


async def _runs(pool: asyncpg.Pool) -> dict[str, Any]:
    """Rebuild and snapshot runs recorded by the CLI and the operator (``eda.maintenance_runs``)."""
    try:
        listed = await list_runs(pool)
    except asyncpg.UndefinedTableError:
        return {"available": False, "note": "eda.maintenance_runs does not exist yet (run eda migrate)"}
    except (asyncpg.PostgresError, OSError) as exc:
        return {"available": False, "note": f"runs unavailable (PostgreSQL: {type(exc).__name__})"}
    return {"available": True, "stale_after_s": STALE_AFTER_S, **listed}


async def health_snapshot(nc: NATS, pool: asyncpg.Pool, schema: str, history: LagHistory) -> dict[str, Any]:
    """Everything the Health page shows, sampled now (also records one lag sample into ``history``)."""
    js = nc.jetstream(timeout=3.0)
    notes: list[str] = []
    try:
        streams = await js.streams_info()
        consumers = await _consumers(js, streams)
    except (JetStreamError, TimeoutError) as exc:
        streams, consumers = [], []
        notes.append(f"JetStream unavailable: {type(exc).__name__}")
    events = next((s for s in streams if s.config.name == STREAM), None)
    last_seq = int(events.state.last_seq) if events else 0
    rows = await _checkpoints(pool, schema)
    projections = _projections(rows, consumers, last_seq)
    history.add({p["projection"]: p["lag"] for p in projections}, time.time())
    snapshots, dead = await asyncio.gather(_snapshots(js), _dead_letters(js, streams))
    return {
        "now": time.time(),
        "streams": [
            {
                "name": s.config.name,
                "messages": s.state.messages,
                "bytes": s.state.bytes,
                "last_sequence": s.state.last_seq,
                "consumers": s.state.consumer_count,
            }
            for s in streams
            if not jetstream.is_internal(s)
        ],
        "projections": projections,
        "lag_history": history.series(),
        "history_window_s": HISTORY_S,
        "consumers": consumers,
        "snapshots": snapshots,
        "rebuilds": await _rebuilds(pool, schema),
        "runs": await _runs(pool),
        "dead_letters": dead,
        "notes": notes,
    }
