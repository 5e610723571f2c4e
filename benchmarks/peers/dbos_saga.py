"""Saga peer (not a test, not the product): the order saga on DBOS Transact, the Python durable-execution
library, measured like ``saga_load.py`` so that the two can be compared in one run (``saga_compare.py``).
The saga itself and every DBOS setting chosen (and why) are in ``dbos_workflow.py`` beside this file.

Setup: embedded PostgreSQL (``app.dev.stack``, durable settings: fsync and synchronous_commit on) in a
fresh temp dir. Default (in-process, as issue 16's baseline): the workflows run in THIS process on its
uvloop loop, started directly by the open-loop generator (``harness.open_loop``: ``--rate`` orders/s for
``--seconds`` after ``--warmup``, each order with ``--items`` product lines) — latency = from just before
the start to the workflow's result, which DBOS gives once the workflow's SUCCESS row is committed
(completion durable); ``post_*`` = start → workflow durable (the product's POST → 201). ``--http``: a
FastAPI app on uvicorn in a separate process (like ``eda api``) hosts DBOS; the generator POSTs
``/api/v1/orders`` (saga_load's body) and the endpoint answers once the workflow is done, so latency =
POST start → answer (completion durable + the answer's trip). The product's completion is a NOTIFY sent
in the committing transaction; DBOS keeps LISTEN/NOTIFY off its write path for speed, and a trigger to
notify would have put that work back on every DBOS commit, hence the answer instead.

Run: ``.venv/bin/python benchmarks/peers/dbos_saga.py [--rate 50] [--seconds 20] [--warmup 3]
[--items 0] [--http] [--sync] [--always-reserve] [--pool-size 20] [--threads 20]``; prints saga_load's table
(completed/s, p50/p95/p99, CPU of the DBOS process — the generator included when in-process — and of
PostgreSQL, machine CPU ms per completed saga) and writes
``benchmarks/results/dbos_saga[_http][_items].json``. DBOS is no dependency of eda: install it with
``.venv/bin/pip install -e '.[bench]'`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: harness.py, saga_load.py and peers/ are one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import uvloop
from harness import completion_stats, cpu_usage, open_loop, pct, report, wait_ready
from saga_load import TARGETS, load_args, with_cpu

from app.dev.postgres import Postgres, embedded_postgres
from app.dev.process import free_port

DBOS_SERIES = "3.4."
INSTALL = ".venv/bin/pip install -e '.[bench]' (from the repository root)"
AMOUNT = 19.99  # saga_load's
PRODUCTS = 100  # the product's catalogue (dbos_workflow.PRODUCTS: not imported, it needs dbos)
BENCH_DIR = Path(__file__).resolve().parents[1]
Outcome = dict[str, int]


def require_dbos() -> None:
    """Exit with how to install DBOS when it is missing (it is no dependency of eda: extra ``bench``)."""
    try:
        installed = version("dbos")
    except PackageNotFoundError:
        sys.exit(f"the DBOS peer needs DBOS Transact {DBOS_SERIES}x, which eda does not depend on: {INSTALL}")
    if not installed.startswith(DBOS_SERIES):
        print(f"warning: dbos {installed} is installed; this peer was written for {DBOS_SERIES}x")


def result_file(items: int, http: bool) -> str:
    """The name under benchmarks/results/ that ``main`` writes."""
    return f"dbos_saga{'_http' if http else ''}{'_items' if items else ''}.json"


def _lines(rng: random.Random, items: int) -> list[tuple[int, int]]:
    return [(p, 1) for p in rng.sample(range(1, PRODUCTS + 1), items)]


def _result(
    rate: float,
    seconds: float,
    items: int,
    started: dict[int, float],
    completed: dict[int, float],
    window: tuple[float, float],
    outcome: Outcome,
) -> dict[str, float]:
    head = {"rate": rate, "items": items, "seconds": seconds, "posted": len(started)}
    return head | outcome | completion_stats(started, completed, window)


async def _drive_inprocess(
    peer: Any, rate: float, seconds: float, warmup: float, items: int, always_reserve: bool
) -> dict[str, float]:
    started: dict[int, float] = {}
    completed: dict[int, float] = {}
    durable: list[float] = []
    outcome = {"errors": 0, "cancelled": 0}
    rng, ids = random.Random(1), itertools.count(1)

    async def one(measured: bool) -> None:
        order_id, t = next(ids), time.perf_counter()
        try:
            result = await peer.start(order_id, _lines(rng, items), AMOUNT, always_reserve)
        except Exception:  # not started: counted, like the product's failed POSTs
            outcome["errors"] += 1
            return
        if measured:  # durable now, as the product's order is at its 201
            started[order_id] = t
            durable.append((time.perf_counter() - t) * 1000)
        try:
            status = await result
        except Exception:  # a workflow that failed (not the saga's cancellation): an error
            status = "errors"
        if status == "completed":
            completed[order_id] = time.perf_counter()
        else:
            outcome[status] += 1

    await asyncio.sleep(2.0)  # as saga_load waits after readiness: cpu_usage's window assumes it
    window = await open_loop(rate, seconds, warmup, one)  # every workflow done, or 30 s after the window
    return _result(rate, seconds, items, started, completed, window, outcome) | {
        "post_p50_ms": pct(durable, 0.50),  # start → workflow durable (the product: POST → 201)
        "post_p99_ms": pct(durable, 0.99),
    }


async def _drive_http(base: str, rate: float, seconds: float, warmup: float, items: int) -> dict[str, float]:
    started: dict[int, float] = {}
    completed: dict[int, float] = {}
    outcome = {"errors": 0, "cancelled": 0}
    rng, keys = random.Random(1), itertools.count(1)
    # No connection limit: each request stays open for a whole saga; a pool limit would queue orders
    # in the client instead of offering them to the server on schedule.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await wait_ready(session, f"{base}/readyz")
        await asyncio.sleep(2.0)

        async def post(measured: bool) -> None:
            key = next(keys)  # the order id comes with the answer, which comes at the end
            lines = [{"product_id": p, "quantity": q} for p, q in _lines(rng, items)]
            body = {"user_id": rng.randint(1, 1000), "items": lines, "amount": AMOUNT}
            t = time.perf_counter()
            if measured:
                started[key] = t
            try:
                async with session.post(f"{base}/api/v1/orders", json=body) as resp:
                    answer = await resp.json() if resp.status == 201 else {"status": resp.status}
            except aiohttp.ClientError:
                answer = {"status": "error"}
            if answer["status"] == "completed":
                completed[key] = time.perf_counter()
            elif answer["status"] == "cancelled":
                outcome["cancelled"] += 1
            else:
                outcome["errors"] += 1
                started.pop(key, None)

        window = await open_loop(rate, seconds, warmup, post)
    return _result(rate, seconds, items, started, completed, window, outcome)


@dataclass(frozen=True)
class PeerOptions:
    """How the peer runs: ``http`` = through the FastAPI process; the DBOS settings of dbos_workflow.py."""

    http: bool = False
    sync: bool = False  # the workflow's flavour (dbos_workflow.py)
    always_reserve: bool = False
    pool: int = 20  # DBOS's default sys_db_pool_size
    threads: int = 20  # max_executor_threads: one per connection

    def env(self, dsn: str) -> dict[str, str]:
        """What ``dbos_workflow.http_app`` reads."""
        settings = {"DSN": dsn, "POOL": self.pool, "THREADS": self.threads}
        flags = {"SYNC": self.sync, "ALWAYS_RESERVE": self.always_reserve}
        return {f"DBOS_SAGA_{k}": str(v) for k, v in settings.items()} | {
            f"DBOS_SAGA_{k}": "1" if v else "0" for k, v in flags.items()
        }


async def _run_http(
    pg: Postgres, peer: PeerOptions, rate: float, seconds: float, warmup: float, items: int
) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "peers.dbos_workflow:http_app"]
    command += ["--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    api = subprocess.Popen(command, env=os.environ | peer.env(pg.dsn))  # noqa: ASYNC220 - once, before any load
    try:
        pids = {"dbos-api": api.pid, "generator": os.getpid()}
        measure = asyncio.create_task(cpu_usage(pids, warmup, seconds))
        result = await _drive_http(f"http://127.0.0.1:{port}", rate, seconds, warmup, items)
        return with_cpu(result, await measure)
    finally:
        api.terminate()
        await asyncio.to_thread(api.wait, 15)


async def run(rate: float, seconds: float, warmup: float, items: int, peer: PeerOptions) -> dict[str, float]:
    """One measured run on a fresh PostgreSQL; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="eda-dbos-") as tmp:
        os.chmod(tmp, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_postgres(Path(tmp)) as pg:
            if peer.http:
                return await _run_http(pg, peer, rate, seconds, warmup, items)
            from dbos import DBOS
            from peers.dbos_workflow import launch

            launched = await launch(pg.dsn, peer.pool, peer.threads, peer.sync)
            try:
                measure = asyncio.create_task(cpu_usage({"dbos": os.getpid()}, warmup, seconds))
                result = await _drive_inprocess(launched, rate, seconds, warmup, items, peer.always_reserve)
                return with_cpu(result, await measure)
            finally:
                DBOS.destroy()
                # DBOS made its (now shut down) executor this loop's default: give the loop its own
                # back for what follows (stopping PostgreSQL uses to_thread).
                asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


def peer_args(parser: argparse.ArgumentParser) -> None:
    """The peer's options (shared with saga_compare.py, which passes them on)."""
    parser.add_argument("--http", action="store_true", help="start workflows through a FastAPI process")
    parser.add_argument("--sync", action="store_true", help="the sync flavour of the workflow")
    parser.add_argument("--always-reserve", action="store_true", help="seed orders get a reserve step too")
    parser.add_argument("--pool-size", type=int, default=PeerOptions.pool, help="DBOS's system database pool")
    parser.add_argument("--threads", type=int, default=PeerOptions.threads, help="DBOS's executor threads")


def peer_from(args: argparse.Namespace) -> PeerOptions:
    return PeerOptions(args.http, args.sync, args.always_reserve, args.pool_size, args.threads)


def main() -> None:
    parser = load_args(__doc__)
    parser.set_defaults(rate=50.0)
    parser.add_argument("--items", type=int, default=0, help="product lines per order (0 = seed order)")
    peer_args(parser)
    args = parser.parse_args()
    require_dbos()
    result = uvloop.run(run(args.rate, args.seconds, args.warmup, args.items, peer_from(args)))
    report(result, TARGETS, result_file(args.items, args.http))
    # Beyond its capacity DBOS still has steps in flight when the run ends; after DBOS.destroy() and
    # PostgreSQL's stop its executor threads retry their checkpoint writes with growing backoff for
    # minutes, and the interpreter's exit joins them (seen: a saga_compare run stuck for minutes at 250/s).
    # The result is written: leave without waiting for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
