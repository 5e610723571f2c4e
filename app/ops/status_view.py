"""``eda status`` in a terminal: the status document (``app.ops.status``) as rich tables, once or
refreshed every ``--interval`` seconds (``--watch``), or as JSON (``--json``; with ``--watch`` one
document per line). Owns the command's connections: NATS, a small PostgreSQL pool, the event store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import open_event_store
from app.ops.status import Sources, gather
from app.readmodel.db import create_pool
from app.settings import Settings


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # unreachable


def _table(title: str, *columns: str) -> Table:
    return Table(*columns, title=title, title_justify="left")


def _streams(doc: dict[str, Any]) -> Table:
    t = _table("Streams", "stream", "messages", "size", "limit", "replicas", "leader")
    for s in doc["streams"]:
        used = (
            f"{size(s['max_bytes'])} ({100 * s['bytes'] / s['max_bytes']:.0f} %)" if s["max_bytes"] else "-"
        )
        replicas = f"{s['replicas_current']}/{s['replicas']}"
        style = "red" if s["replicas_current"] < s["replicas"] or not s["leader"] else ""
        t.add_row(
            s["name"],
            f"{s['messages']:,}",
            size(s["bytes"]),
            used,
            Text(replicas, style),
            s["leader"] or Text("none", "red"),
        )
    return t


def _consumers(doc: dict[str, Any]) -> Table:
    t = _table("Consumers", "stream", "consumer", "pending", "ack pending", "redelivered", "last active")
    for c in doc["consumers"]:
        t.add_row(
            c["stream"],
            c["name"],
            f"{c['pending']:,}",
            f"{c['ack_pending']:,}",
            f"{c['redelivered']:,}",
            c["last_active"] or "-",
        )
    return t


def _projections(doc: dict[str, Any]) -> Table:
    t = _table("Projections", "projection", "checkpoint", "lag (events)", "lag (s)", "updated")
    for p in doc["projections"]:
        style = "red" if p["lag_seconds"] > 5 else ""
        t.add_row(
            p["projection"],
            f"{p['checkpoint']:,}",
            f"{p['lag_events']:,}",
            Text(f"{p['lag_seconds']:.1f}", style),
            p["updated_at"] or "-",
        )
    return t


def _sagas(doc: dict[str, Any]) -> RenderableType:
    sagas = doc["sagas"]
    if sagas is None:
        return Text("Sagas: unavailable", "red")
    by = sagas["by_state"]
    line = Text.assemble(
        ("Sagas  ", "bold"),
        f"in flight {sagas['in_flight']} (running {by['running']}, compensating {by['compensating']}), ",
        f"completed {by['completed']:,}, cancelled {by['cancelled']:,}, ",
        (f"overdue {sagas['overdue']}", "red bold" if sagas["overdue"] else ""),
    )
    oldest = sagas["oldest_running"]
    if oldest:
        age = f"{oldest['age_seconds']:.1f} s"
        line.append(f"\n       oldest running: order {oldest['order_id']}, {oldest['step']} for {age}")
    if sagas["truncated"]:
        line.append(f"\n       (states read for the first {sagas['loaded']} sagas in flight)")
    return line


def _dead_letters(doc: dict[str, Any]) -> RenderableType:
    dead = doc["dead_letters"]
    if dead is None:
        return Text("Dead letters: unavailable", "red")
    line = Text.assemble(
        ("Dead letters  ", "bold"),
        (f"{dead['messages']:,}", "red bold" if dead["messages"] else ""),
        f" in {dead['stream']}",
    )
    for d in dead["recent"]:
        where = " ".join(str(d[k]) for k in ("time", "consumer", "original_subject") if d[k])
        line.append(f"\n       #{d['dlq_sequence']} {where}: {d['error'] or ''}")
    return line


def _runs(doc: dict[str, Any]) -> Table:
    t = _table(
        "Rebuilds and snapshots", "run", "kind", "target", "source", "status", "phase", "started", "finished"
    )
    recorded = doc["runs"] or {"running": [], "finished": []}
    for r in [*recorded["running"], *recorded["finished"]]:
        source = f"{r['source']} {r['k8s_namespace']}/{r['k8s_name']}" if r.get("k8s_name") else r["source"]
        style = {"failed": "red", "stalled": "red", "running": "yellow"}.get(r["status"], "")
        t.add_row(
            r["id"],
            r["kind"],
            r["target"],
            source,
            Text(r["status"], style),
            r["phase"],
            r["started_at"],
            r["finished_at"] or "-",
        )
    return t


def render(doc: dict[str, Any]) -> Group:
    """The status document as tables and lines, in the order an operator reads them."""
    parts: list[RenderableType] = [Text(f"eda status — {doc['generated_at']}", "bold")]
    parts += [Text(e, "red") for e in doc["errors"]]
    parts += [_streams(doc), _consumers(doc), _projections(doc), _sagas(doc), _dead_letters(doc), _runs(doc)]
    return Group(*parts)


@contextlib.asynccontextmanager
async def _sources(settings: Settings) -> AsyncIterator[Sources]:
    nc = await connect_nats(settings, name="eda-status")
    try:
        store = await open_event_store(nc, settings, require=False)  # read-only: reports a missing EVENTS
        pool = await create_pool(settings.database_url.get_secret_value(), size=2)
        try:
            yield Sources(nc, pool, store, settings.readmodel_schema)
        finally:
            await pool.close()
            await store.close()
    finally:
        await nc.close()


async def run_status(
    settings: Settings, *, as_json: bool, watch: bool, interval: float, console: Console
) -> None:
    """``eda status``: print once, or refresh until interrupted."""
    async with _sources(settings) as src:
        if as_json:  # one document per line: `eda status --json --watch | jq` follows it
            while True:
                print(json.dumps(await gather(src)), flush=True)
                if not watch:
                    return
                await asyncio.sleep(interval)
        if not watch:
            console.print(render(await gather(src)))
            return
        with Live(render(await gather(src)), console=console, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                live.update(render(await gather(src)), refresh=True)
