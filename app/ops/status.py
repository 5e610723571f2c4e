"""``eda status``: what the live system looks like now, as one JSON-ready document (schema
``status.schema.json`` beside this module, ``schema_version`` 1; fields are only ever added).

Sources, all read-only: JetStream (streams and their sizes, consumers and their backlogs, the dead-letter
stream, the saga timer index), PostgreSQL (projection checkpoints, orders by status, the rebuild and
snapshot runs of ``eda.maintenance_runs``) and the event store (the state of each saga in flight).

Sagas: the sagas in flight are those with a timer (``app.saga.census``: a step running for longer
than the orchestrator holds its trigger) and those whose order is not finished in the read model (the
younger ones, whose trigger is held: the census only counts them); each one's state is its view
(``app.service.sagaview``: running or compensating; its oldest running step); up to ``SAGA_LIMIT`` of
them are loaded. Finished sagas are counted from the read model: each order has one saga, and its terminal
status is the saga's (an order is ``cancelled`` once compensation starts, so compensating sagas still
in flight are not counted as cancelled yet).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.errors import Error as JetStreamError

from app.domain.saga import Saga, SagaStatus, StepStatus
from app.eventstore.ports import EventStore
from app.ops import jetstream
from app.readmodel import deadletter, runs
from app.readmodel.db import quote_ident
from app.readmodel.lag import ProjectionLag
from app.readmodel.rebuild import PROJECTIONS
from app.saga import census
from app.service.sagaview import SagaView, SagaViews

SCHEMA_VERSION = 1
SAGA_LIMIT = 500
LOAD_CONCURRENCY = 32  # saga views read at once (each a few JetStream requests)
RECENT_RUNS = 10
RECENT_DEAD_LETTERS = 5


@dataclass(frozen=True, slots=True)
class Sources:
    """The live system's clients (owned by the caller)."""

    nc: NATS
    pool: asyncpg.Pool
    store: EventStore
    schema: str  # the read model's schema


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


async def _projections(src: Sources, consumers: list[jetstream.ConsumerHealth]) -> list[dict[str, Any]]:
    rows = await src.pool.fetch(
        f"SELECT projection, sequence, updated_at FROM {quote_ident(src.schema)}.projection_checkpoints "
        "ORDER BY projection"
    )
    out = []
    for row in rows:
        name, durable = row["projection"], f"projector-{row['projection']}"
        events, seconds = 0, 0.0
        if name in PROJECTIONS and any(c.name == durable for c in consumers):
            lag = ProjectionLag(src.nc, src.store.codec, name, durable, PROJECTIONS[name])
            events, seconds = await lag.sample(int(row["sequence"]))
        out.append(
            {
                "projection": name,
                "checkpoint": int(row["sequence"]),
                "updated_at": _iso(row["updated_at"]),
                "lag_events": events,
                "lag_seconds": round(seconds, 3),
            }
        )
    return out


async def _orders_by_status(src: Sources) -> dict[str, int]:
    rows = await src.pool.fetch(
        f"SELECT status, count(*) AS n FROM {quote_ident(src.schema)}.orders GROUP BY status"
    )
    return {str(r["status"]): int(r["n"]) for r in rows}


async def _open_orders(src: Sources) -> list[int]:
    rows = await src.pool.fetch(
        f"SELECT order_id FROM {quote_ident(src.schema)}.orders "
        "WHERE status NOT IN ('completed', 'cancelled') ORDER BY order_id LIMIT $1",
        SAGA_LIMIT + 1,
    )
    return [int(r["order_id"]) for r in rows]


async def _sagas(src: Sources, now: datetime) -> dict[str, Any]:
    taken = await census.take(src.nc.jetstream(timeout=5.0))
    in_flight = sorted(taken.in_flight() | set(await _open_orders(src)))
    views, gate = SagaViews(src.store), asyncio.Semaphore(LOAD_CONCURRENCY)

    async def load(order_id: int) -> SagaView:
        async with gate:
            return await views.load(order_id)

    # Each view is two small reads: one after the other, 500 of them took seconds on a loaded server.
    loaded = await asyncio.gather(*(load(order_id) for order_id in in_flight[:SAGA_LIMIT]))
    sagas = [v.saga for v in loaded if isinstance(v.saga, Saga)]
    compensating = sum(1 for s in sagas if s.status is SagaStatus.COMPENSATING)
    running = [
        (step.started_at, saga.order_id, step.name.value)
        for saga in sagas
        for step in saga.steps
        if step.status is StepStatus.RUNNING
    ]
    oldest = min(running, default=None)
    orders = await _orders_by_status(src)
    return {
        "in_flight": max(taken.in_flight_count(), len(in_flight)),
        "by_state": {
            "running": sum(1 for s in sagas if s.status is SagaStatus.RUNNING),
            "compensating": compensating,
            "completed": orders.get("completed", 0),
            "cancelled": max(0, orders.get("cancelled", 0) - compensating),
        },
        "overdue": len({t.order_id for t in taken.overdue()}),
        "oldest_running": None
        if oldest is None
        else {
            "order_id": oldest[1],
            "step": oldest[2],
            "started_at": _iso(oldest[0]),
            "age_seconds": round((now - oldest[0]).total_seconds(), 3),
        },
        "loaded": len(sagas),
        "truncated": len(in_flight) > SAGA_LIMIT,
    }


async def _dead_letters(src: Sources, infos: list[Any]) -> dict[str, Any]:
    dlq = next((i for i in infos if i.config.name == deadletter.DLQ_STREAM), None)
    recent = await deadletter.recent(src.nc.jetstream(timeout=5.0), RECENT_DEAD_LETTERS) if dlq else []
    return {
        "stream": deadletter.DLQ_STREAM,
        "exists": dlq is not None,
        "messages": int(dlq.state.messages) if dlq else 0,
        "recent": [
            {k: d.get(k) for k in ("dlq_sequence", "time", "consumer", "original_subject", "error")}
            for d in recent
        ],
    }


async def _part[T](name: str, work: Awaitable[T], default: T, errors: list[str]) -> T:
    """``await work``; a part that cannot be read (PostgreSQL or NATS down) is reported, not fatal."""
    try:
        return await work
    except (asyncpg.PostgresError, OSError, JetStreamError, TimeoutError) as exc:
        errors.append(f"{name} unavailable: {type(exc).__name__}: {exc}")
        return default


async def gather(src: Sources) -> dict[str, Any]:
    """The status document now (see the module docstring and ``status.schema.json``)."""
    now = datetime.now(UTC)
    errors: list[str] = []
    js = src.nc.jetstream(timeout=5.0)
    try:
        infos = await jetstream.streams(js)
        consumers = await jetstream.consumers(js, infos)
    except (JetStreamError, TimeoutError) as exc:
        infos, consumers = [], []
        errors.append(f"JetStream unavailable: {type(exc).__name__}")
    projections, sagas, dead, recorded = await asyncio.gather(
        _part("projections", _projections(src, consumers), [], errors),
        _part("sagas", _sagas(src, now), None, errors),
        _part("dead letters", _dead_letters(src, infos), None, errors),
        _part("runs", runs.list_runs(src.pool, RECENT_RUNS), None, errors),
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(now),
        "streams": [
            jetstream.stream_health(i).as_dict() | {"internal": jetstream.is_internal(i)} for i in infos
        ],
        "consumers": [c.as_dict() for c in consumers],
        "projections": projections,
        "sagas": sagas,
        "dead_letters": dead,
        "runs": recorded,
        "errors": errors,
    }
