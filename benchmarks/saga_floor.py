"""Saga floor (not a test, not the product): what THIS machine can do for the seed saga's message
pattern when every role is reduced to bare handlers — a generous bound for a Python (nats-py)
implementation of the agreed architecture, to judge ``saga_load.py``'s numbers and issue 16's targets by.

Same servers as ``saga_load.py`` (embedded nats-server with ``sync_interval: always``, embedded
PostgreSQL), same streams (``EVENTS``, the ``COMMANDS`` work queue, ``SAGA_TIMERS`` with message
schedules), same consumers (``PullLoop``), same separate processes and the same load generator
(``saga_load.drive``: HTTP POSTs, completion = the read model's NOTIFY for version 4 of the order row).
``--design`` picks the message pattern, each message stored once and fsync'd:

- ``new`` (default; issue 16's design), 7 per order: OrderCreated (API); the saga, on it, stores the
  ``charge`` command (``cmd.payment.<id>``, Nats-Msg-Id dedup); PaymentCharged (payment worker);
  OrderPaid (saga, conditional on the order stream); ShipmentDispatched (the shipping worker consumes
  ``events.order.>`` itself and acts on OrderPaid: no ship command); OrderShipped and OrderCompleted
  (saga, conditional). No saga stream, no timer (``SAGA_TIMERS`` exists but none is armed on the happy
  path), no purge; the saga acks its own order events, the shipping worker every one but OrderPaid.
- ``old`` (the design before issue 16, for last session's figures), 13 per order: OrderCreated;
  SagaStarted, charge command, timer; PaymentCharged; SagaAdvanced, ship command, OrderPaid;
  ShipmentDispatched; SagaAdvanced, OrderShipped, OrderCompleted; SagaCompleted (+ the timer's purge).

Both store the same four order events (the projector's version 4). ``stored_per_order`` in the result
counts what the streams stored over the orders projected, to check the model stores what it claims
(and the result names its ``design``). What is left out is everything that makes it a product: no domain
objects, validation, envelopes, upcasting, idempotency keys, id counter (one API process counts),
caches, retries, conflict handling, compensation, telemetry, timeline or checkpoint rows; the
projector upserts one status row per order. So the floor is generous: the real system can only be
slower.

Run: ``.venv/bin/python benchmarks/saga_floor.py [--design new|old] [--rate 200] [--seconds 20]
[--compare]``; prints the design's stored messages, then the same table as ``saga_load.py`` with the
CPU of every process and of the whole machine over the measured window, and writes
``benchmarks/results/saga_floor.json`` (``saga_floor_old.json`` for ``--design old``). ``--compare``
then runs ``saga_load.py`` with seed orders at the same rate and prints product/floor ratios: this
host's speed swings from hour to hour, so the ratio of runs taken together says more than either number
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import orjson
import uvicorn
import uvloop
from harness import cpu_usage, report
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from saga_load import TARGETS, drive, load_args, with_cpu
from saga_load import run as run_product

from app.dev.process import free_port
from app.dev.stack import embedded_stack
from app.eventstore.consumer import KeyedLocks, PullLoop
from app.eventstore.jetstream import STREAM, events_stream_config
from app.saga.fulfilment import timeout_subject
from app.saga.timeouts import TIMERS_STREAM, disarm, timers_stream_config
from app.workers.commands import COMMANDS_STREAM, commands_stream_config

BODY = b'{"data":"' + b"x" * 400 + b'"}'  # about the size of a real event envelope
VERSION = {"OrderCreated": 1, "OrderPaid": 2, "OrderShipped": 3, "OrderCompleted": 4}
SCHEDULE = "@at 2099-01-01T00:00:00Z"  # never fires: the saga ends first and purges it
STORED = {  # the messages each design stores for a seed order, in the order it stores them
    "new": "OrderCreated charge PaymentCharged OrderPaid ShipmentDispatched OrderShipped OrderCompleted",
    "old": "OrderCreated SagaStarted charge timer PaymentCharged SagaAdvanced ship OrderPaid"
    " ShipmentDispatched SagaAdvanced OrderShipped OrderCompleted SagaCompleted",
}


def describe(design: str) -> str:
    """One line naming ``design`` and the messages it stores per seed saga."""
    stored = STORED[design].split()
    return f"floor design {design}: {len(stored)} stored messages per seed saga: {', '.join(stored)}"


async def _pub(js: Any, subject: str, kind: str, msg_id: str, expected: int | None = None) -> int:
    headers = {"Nats-Msg-Id": msg_id, "Eda-Type": kind}
    if expected is not None:
        headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
    return int((await js.publish(subject, BODY, headers=headers)).seq)


def _serve(main: Callable[[str, str], Awaitable[None]], nats_url: str, dsn: str) -> None:
    uvloop.run(main(nats_url, dsn))


async def _api(nats_url: str, dsn: str, port: int) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    next_id = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal next_id
        if scope["type"] != "http":
            return
        if scope["path"] != "/api/v1/orders":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            part = await receive()
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        orjson.loads(body)
        next_id += 1
        order_id = next_id
        await _pub(js, f"events.order.{order_id}", "OrderCreated", f"o1-{order_id}", 0)
        out = orjson.dumps({"order_id": order_id, "status": "created", "version": 1})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )
    await uvicorn.Server(config).serve()


async def _orchestrate(nc: Any, handle: Callable[[Msg], Awaitable[None]]) -> None:
    """The saga's durable on the order's and the workers' events, one order's events at a time."""
    subjects = ["events.order.*", "events.payment.*", "events.shipping.*"]
    config = ConsumerConfig(
        durable_name="floor-saga",
        filter_subjects=subjects,
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=4096,
    )
    await nc.jetstream().add_consumer(STREAM, config)
    key = lambda m: m.subject.rsplit(".", 1)[1]  # noqa: E731
    await PullLoop(nc, STREAM, "floor-saga", handle, 256, key, "saga", KeyedLocks()).run()


async def _saga(nats_url: str, dsn: str) -> None:
    """The new design: no saga stream, no timer; each reaction appends to the order and/or commands."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    order: dict[str, int] = {}

    async def handle(msg: Msg) -> None:  # its own OrderPaid/OrderShipped/OrderCompleted: acked, no work
        kind = (msg.headers or {}).get("Eda-Type")
        oid = msg.subject.rsplit(".", 1)[1]
        if kind == "OrderCreated":
            order[oid] = msg.metadata.sequence.stream
            await _pub(js, f"cmd.payment.{oid}", "charge", f"c1-{oid}")
        elif kind == "PaymentCharged":
            order[oid] = await _pub(js, f"events.order.{oid}", "OrderPaid", f"o2-{oid}", order[oid])
        elif kind == "ShipmentDispatched":
            shipped = await _pub(js, f"events.order.{oid}", "OrderShipped", f"o3-{oid}", order[oid])
            await _pub(js, f"events.order.{oid}", "OrderCompleted", f"o4-{oid}", shipped)
            del order[oid]

    await _orchestrate(nc, handle)


async def _old_saga(nats_url: str, dsn: str) -> None:
    """The old design: the saga's own stream, a timer per saga, every command through COMMANDS."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    saga: dict[str, int] = {}
    order: dict[str, int] = {}

    async def handle(msg: Msg) -> None:
        kind = (msg.headers or {}).get("Eda-Type")
        oid = msg.subject.rsplit(".", 1)[1]
        if kind == "OrderCreated":
            order[oid] = msg.metadata.sequence.stream
            saga[oid] = await _pub(js, f"events.saga.{oid}", "SagaStarted", f"s1-{oid}", 0)
            await _pub(js, f"cmd.payment.{oid}", "charge", f"c1-{oid}")
            headers = {"Nats-Msg-Id": f"t-{oid}", "Nats-Schedule": SCHEDULE}
            headers["Nats-Schedule-Target"] = timeout_subject(int(oid))
            await js.publish(f"sched.saga.{oid}.timer", b"", headers=headers)
        elif kind == "PaymentCharged":
            saga[oid] = await _pub(js, f"events.saga.{oid}", "SagaAdvanced", f"s2-{oid}", saga[oid])
            await _pub(js, f"cmd.shipping.{oid}", "ship", f"c2-{oid}")
            order[oid] = await _pub(js, f"events.order.{oid}", "OrderPaid", f"o2-{oid}", order[oid])
        elif kind == "ShipmentDispatched":
            saga[oid] = await _pub(js, f"events.saga.{oid}", "SagaAdvanced", f"s3-{oid}", saga[oid])
            order[oid] = await _pub(js, f"events.order.{oid}", "OrderShipped", f"o3-{oid}", order[oid])
            order[oid] = await _pub(js, f"events.order.{oid}", "OrderCompleted", f"o4-{oid}", order[oid])
        elif kind == "OrderCompleted":
            await _pub(js, f"events.saga.{oid}", "SagaCompleted", f"s4-{oid}", saga.pop(oid))
            await disarm(js, int(oid))
            order.pop(oid, None)

    await _orchestrate(nc, handle)


def _worker(name: str, outcome: str, on: str | None = None) -> Callable[[str, str], Awaitable[None]]:
    """A bare worker appending ``outcome`` to ``events.<name>.<id>``: for each command on ``cmd.<name>.*``
    or, with ``on``, for each order event of that type (the others it acks without work)."""

    async def main(nats_url: str, dsn: str) -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()

        async def handle(msg: Msg) -> None:
            if on is None or (msg.headers or {}).get("Eda-Type") == on:
                oid = msg.subject.rsplit(".", 1)[1]
                await _pub(js, f"events.{name}.{oid}", outcome, f"{name}-{oid}", 0)

        durable = f"floor-{name}"
        if on is None:
            config = ConsumerConfig(
                durable_name=durable, filter_subject=f"cmd.{name}.*", ack_policy=AckPolicy.EXPLICIT
            )
            await js.add_consumer(COMMANDS_STREAM, config)
            await PullLoop(nc, COMMANDS_STREAM, durable, handle, 64, None, name).run()
        else:  # four order events per saga reach it, one with work: room for four times the commands
            config = ConsumerConfig(
                durable_name=durable,
                filter_subject="events.order.>",
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=4096,
            )
            await js.add_consumer(STREAM, config)
            await PullLoop(nc, STREAM, durable, handle, 256, None, name).run()

    return main


async def _projector(nats_url: str, dsn: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    db = await asyncpg.connect(dsn)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS floor_orders (id bigint PRIMARY KEY, status text, version int)"
    )
    pending: list[tuple[int, str, asyncio.Future[None]]] = []
    wake = asyncio.Event()

    async def flusher() -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch = pending[:]
            del pending[:]
            rows: dict[int, str] = {}
            for oid, kind, _ in batch:
                if VERSION[kind] >= VERSION.get(rows.get(oid, ""), 0):
                    rows[oid] = kind
            notify = ",".join(f"{oid}:{VERSION[kind]}" for oid, kind in rows.items())
            await db.execute(
                "WITH w AS (INSERT INTO floor_orders"
                " SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[])"
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version"
                " WHERE floor_orders.version < excluded.version RETURNING 1)"
                " SELECT pg_notify('eda_orders', $4), (SELECT count(*) FROM w)",
                list(rows),
                list(rows.values()),
                [VERSION[k] for k in rows.values()],
                notify,
            )
            for *_, done in batch:
                done.set_result(None)

    async def handle(msg: Msg) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.append((int(msg.subject.rsplit(".", 1)[1]), (msg.headers or {})["Eda-Type"], done))
        wake.set()
        await done

    task = asyncio.create_task(flusher())
    config = ConsumerConfig(
        durable_name="floor-projector",
        filter_subject="events.order.*",
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=4096,
    )
    await js.add_consumer(STREAM, config)
    try:
        await PullLoop(nc, STREAM, "floor-projector", handle, 512, None, "projector").run()
    finally:
        task.cancel()


def _roles(design: str, port: int) -> dict[str, Callable[[str, str], Awaitable[None]]]:
    new = design == "new"
    return {
        "api": lambda n, d: _api(n, d, port),
        "projector": _projector,
        "saga": _saga if new else _old_saga,
        "payment": _worker("payment", "PaymentCharged"),
        "shipping": _worker("shipping", "ShipmentDispatched", "OrderPaid" if new else None),
    }


async def _stored_per_order(nats_url: str, dsn: str) -> float:
    """Messages the three streams ever stored (their last sequences) over the orders the projector saw:
    the design's count once every saga has ended (a dedup'd or refused publish stores nothing)."""
    await asyncio.sleep(1.0)  # the old design's SagaCompleted comes after the completion NOTIFY
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stored = sum([(await js.stream_info(s)).state.last_seq for s in (STREAM, COMMANDS_STREAM, TIMERS_STREAM)])
    await nc.close()
    db = await asyncpg.connect(dsn)
    orders = await db.fetchval("SELECT count(*) FROM floor_orders")
    await db.close()
    return stored / max(orders, 1)


async def run(rate: float, seconds: float, warmup: float, design: str = "new") -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="eda-floor-") as tmp:
        os.chmod(tmp, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_stack(Path(tmp)) as (nats_server, pg):
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            for stream in (events_stream_config(1), commands_stream_config(1), timers_stream_config(1)):
                await js.add_stream(stream)
            await nc.close()
            port = free_port()
            roles = _roles(design, port)
            ctx = mp.get_context("fork")
            procs = {
                name: ctx.Process(target=_serve, args=(main, nats_server.url, pg.dsn))
                for name, main in roles.items()
            }
            for proc in procs.values():
                proc.start()
            try:
                pids = {name: proc.pid or 0 for name, proc in procs.items()} | {"generator": os.getpid()}
                measure = asyncio.create_task(
                    cpu_usage(pids | {"nats-server": nats_server.pid or 0}, warmup, seconds)
                )
                result = await drive(f"http://127.0.0.1:{port}", pg.dsn, None, rate, seconds, warmup, 0)
                result = with_cpu(result, await measure)
                stored = await _stored_per_order(nats_server.url, pg.dsn)
                return {"design": design} | result | {"stored_per_order": stored}  # type: ignore[dict-item]
            finally:
                for proc in procs.values():
                    proc.kill()
                    proc.join()


def design_arg(parser: argparse.ArgumentParser, flag: str = "--design") -> None:
    """The floor's ``--design`` (shared with ``saga_compare.py`` as ``--floor-design``)."""
    parser.add_argument(flag, choices=sorted(STORED), default="new", help="the floor's message pattern")


COMPARED = ("completed_per_s", "p50_ms", "p99_ms", "machine_busy_pct", "cpu_ms_per_saga")


def main() -> None:
    parser = load_args(__doc__)
    parser.add_argument(
        "--compare", action="store_true", help="then run saga_load.py (seed orders) at the same rate"
    )
    design_arg(parser)
    args = parser.parse_args()
    print(describe(args.design))
    floor = uvloop.run(run(args.rate, args.seconds, args.warmup, args.design))
    report(floor, TARGETS, "saga_floor.json" if args.design == "new" else f"saga_floor_{args.design}.json")
    if args.compare:  # the product right after, so both see the same hour of this host
        product = uvloop.run(run_product(args.rate, args.seconds, args.warmup, 0, False))
        floor_name = f"floor:{args.design}"
        print(f"\n{'seed orders':<22}{floor_name:>12}{'product':>12}{'product/floor':>15}")
        for key in COMPARED:
            ratio = product[key] / floor[key] if floor[key] else float("nan")
            print(f"{key:<22}{floor[key]:>12.1f}{product[key]:>12.1f}{ratio:>15.2f}")


if __name__ == "__main__":
    main()
