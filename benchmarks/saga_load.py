"""Saga load benchmark (not a test): orders/s completed end to end and the time from POST to
``completed`` in the read model.

Setup: embedded nats-server (``sync_interval: always``) + PostgreSQL in a temp dir, then ``eda api``,
``eda projector``, ``eda saga`` and ``eda worker inventory|payment|shipping`` as SEPARATE processes;
this process only generates load: an open loop POSTing ``/api/v1/orders`` at ``--rate`` orders/s for
``--seconds`` (after ``--warmup``), each order with ``--items`` product lines (0 = the seed's curl
order). ``completed`` = the projector's NOTIFY for version 4 (OrderCreated, OrderPaid, OrderShipped,
OrderCompleted), sent in the transaction that makes it readable; latency = that moment minus the POST's
start. Throughput = orders completed during the measured window / its length.

``--tap`` also subscribes to ``events.order.*`` to report when ``OrderCompleted`` was stored
(``stored_*``): a diagnostic that adds a subscriber to every order event, so it is off by default.

``--auth oidc`` (the default, as in production; ``api_load.auth_env``) runs the dev OIDC provider and
POSTs with a backend's bearer token (``orders:write:any``: a seed order brings its amount); ``disabled``
runs with ``EDA_AUTH_MODE=disabled``. Every product costs ``EDA_DEFAULT_PRICE`` = 19.99 (orders with
items are priced by the server), so seed orders and orders with items cost the same as before.

Run: ``.venv/bin/python benchmarks/saga_load.py [--rate 200] [--seconds 20] [--items 1] [--tap]
[--auth oidc]``; prints a table and writes ``benchmarks/results/saga_load.json``. On a 2-core machine
the servers, six roles and the generator share the CPUs; other work on the machine skews the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time

import aiohttp
import nats
import nats.aio.msg
import uvloop
from api_load import auth_env
from harness import (
    completion_stats,
    cpu_usage,
    open_loop,
    pct,
    report,
    running_system,
    wait_ready,
    watch_versions,
)

TARGETS = {"completed_per_s": 200, "p99_ms": 500}
PRICE = "19.99"  # EDA_DEFAULT_PRICE: every product's price, and a seed order's amount
ROLES = [["projector"], ["saga"], ["worker", "inventory"], ["worker", "payment"], ["worker", "shipping"]]


async def run(
    rate: float, seconds: float, warmup: float, items: int, tap: bool, auth: str = "oidc"
) -> dict[str, float]:
    async with (
        auth_env(auth) as (env, headers),
        running_system(ROLES, {"EDA_DEFAULT_STOCK": "100000000", "EDA_DEFAULT_PRICE": PRICE} | env) as system,
    ):
        nats_url = system.nats_url if tap else None
        measure = asyncio.create_task(cpu_usage(system.pids | {"generator": os.getpid()}, warmup, seconds))
        result = await drive(system.base_url, system.dsn, nats_url, rate, seconds, warmup, items, headers)
        return with_cpu(result, await measure) | {"auth": auth}  # type: ignore[dict-item]


def with_cpu(result: dict[str, float], usage: dict[str, float]) -> dict[str, float]:
    """``result`` + ``usage`` + the whole machine's CPU milliseconds per completed saga."""
    per_saga = 10 * usage["machine_busy_pct"] / max(result["completed_per_s"], 1e-9)
    return result | usage | {"cpu_ms_per_saga": per_saga}


async def drive(
    base: str,
    dsn: str,
    nats_url: str | None,
    rate: float,
    seconds: float,
    warmup: float,
    items: int,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    listener, completed = await watch_versions(dsn, 4)
    stored: dict[int, float] = {}

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        if (msg.headers or {}).get("Eda-Type") == "OrderCompleted":
            stored.setdefault(int(msg.subject.rsplit(".", 1)[1]), time.perf_counter())

    nc = None
    if nats_url is not None:
        nc = await nats.connect(nats_url)
        await nc.subscribe("events.order.*", cb=on_event)
    started: dict[int, float] = {}
    posts: list[float] = []
    errors = 0
    rng = random.Random(1)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, headers=headers or {}) as session:
        await wait_ready(session, f"{base}/readyz")
        await asyncio.sleep(2.0)  # let the saga and workers create their consumers

        async def post(measured: bool) -> None:
            nonlocal errors
            lines = [{"product_id": p, "quantity": 1} for p in rng.sample(range(1, 101), items)]
            body = {"user_id": rng.randint(1, 1000), "items": lines}
            if not items:  # an order without items brings its amount; the server prices the others
                body["amount"] = float(PRICE)
            t = time.perf_counter()
            try:
                async with session.post(f"{base}/api/v1/orders", json=body) as resp:
                    payload = await resp.read()
            except aiohttp.ClientError:
                errors += 1
                return
            if resp.status != 201:
                errors += 1
                return
            if measured:
                started[json.loads(payload)["order_id"]] = t
                posts.append((time.perf_counter() - t) * 1000)

        window = await open_loop(rate, seconds, warmup, post)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not all(oid in completed for oid in started):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await listener.close()
    if nc is not None:
        await nc.close()
    stored_latencies = [(stored[oid] - t) * 1000 for oid, t in started.items() if oid in stored]
    return (
        {"rate": rate, "items": items, "seconds": seconds, "posted": len(started), "errors": errors}
        | completion_stats(started, completed, window)
        | {
            "post_p50_ms": pct(posts, 0.50),
            "post_p99_ms": pct(posts, 0.99),
            "stored_p50_ms": pct(stored_latencies, 0.50),
            "stored_p99_ms": pct(stored_latencies, 0.99),
        }
    )


def load_args(doc: str | None) -> argparse.ArgumentParser:
    """``--rate``, ``--seconds``, ``--warmup`` (shared with ``saga_floor.py``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="orders POSTed per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    return parser


def auth_arg(parser: argparse.ArgumentParser) -> None:
    """``--auth`` (shared with ``saga_compare.py``)."""
    parser.add_argument(
        "--auth",
        choices=["oidc", "disabled"],
        default="oidc",
        help="bearer tokens of the dev OIDC provider (as in production) or EDA_AUTH_MODE=disabled",
    )


def main() -> None:
    parser = load_args(__doc__)
    parser.add_argument("--items", type=int, default=1, help="product lines per order (0 = seed order)")
    parser.add_argument("--tap", action="store_true", help="also time OrderCompleted stored (NATS tap)")
    auth_arg(parser)
    args = parser.parse_args()
    result = uvloop.run(run(args.rate, args.seconds, args.warmup, args.items, args.tap, args.auth))
    report(result, TARGETS, "saga_load.json" if args.items else "saga_load_no_items.json")


if __name__ == "__main__":
    main()
