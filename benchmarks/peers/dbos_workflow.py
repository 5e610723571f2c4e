"""The order saga as a DBOS Transact application (the peer ``dbos_saga.py`` measures): the workflow and
its steps, DBOS's configuration and launch on a PostgreSQL server, and the ``--http`` API process.

The saga (``saga``, pure): one DBOS workflow per order, ``reserve → charge → ship`` as durable steps, with
the product's compensation shape (charge declined → release; shipping failed → refund + release; a
rejected reservation cancels with nothing to undo). As in the product (docs/saga.md), an order without
items skips the reservation; ``always_reserve`` keeps it as an empty durable step (the shape issue 16's
baseline measured). With items the reservation takes their units from a ``products`` table in a DBOS
datasource transaction — the stock update and DBOS's checkpoint commit together, exactly once as the
product's reservation is — at READ COMMITTED (a conditional decrement under row locks needs no more;
the default SERIALIZABLE would only add retries); a release gives them back the same way. Charge and
ship are plain steps whose checkpoint is the outcome (the product's workers store an event).

Two flavours of the same workflow, both first-class in DBOS: ``async`` (coroutine workflow and steps on
the caller's event loop; DBOS hands each system-database call to its executor) and ``sync`` (DBOS runs
the workflow in one executor thread, database calls inline; started from the loop through a thread, its
outcome awaited with ``asyncio.wrap_future`` on the handle's future rather than a thread blocked in
``get_result``). On the shared 2-core host, probes of 200 seed workflows 20 at a time gave sync 12 to 15 ms
of process CPU per workflow against async 13 to 17 ms: too noisy to crown one, so both are offered.

DBOS settings (fair, no handicaps; every other setting is DBOS's default):
- workflows started directly (``DBOS.start_workflow[_async]``), no ``Queue``: a workflow is durable when
  the call returns (its row, with its inputs, committed — like the product's OrderCreated) and runs at
  once; a queue adds a durable enqueue → dequeue hop and a polling delay, and is for flow control,
  which the product does not do here either;
- ``sys_db_pool_size`` 20 (DBOS's default; ``pool`` changes it), the datasource's pool the same size;
- ``max_executor_threads`` = the pool size (``threads`` changes it; DBOS's default is unbounded): under
  bursts CPython's ThreadPoolExecutor keeps adding threads while idle ones exist (a probe of 120
  workflows, 20 at a time, ended with 370 threads), and a thread beyond the pool's connections can only
  wait for one while adding GIL contention — bounded, the same probe ran as fast or faster with 20 (a
  sync workflow holds a thread for its life, so there it also bounds the workflows in flight);
- ``pool_pre_ping`` off on both pools: it costs a round trip per checkout to guard against connections a
  server or proxy dropped, which cannot happen on this loopback run (the product's asyncpg pools do not
  ping either);
- the system database ``dbos_saga_sys`` and the products (database ``eda``) on the same server;
- log level WARNING, OTLP off (DBOS's default; the product exports nothing in its benchmark either).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, AsyncSQLAlchemyDatasource, SetWorkflowID, SQLAlchemyDatasource
from fastapi import FastAPI
from pydantic import BaseModel, Field

DECLINE_ABOVE = 10_000.0  # the product's EDA_PAYMENT_DECLINE_ABOVE default
PRODUCTS, STOCK = 100, 100_000_000  # the product's catalogue size and saga_load's EDA_DEFAULT_STOCK
SYS_DB, APP_DB = "dbos_saga_sys", "eda"
Lines = list[tuple[int, int]]  # (product id, quantity)
Step = tuple[str, tuple[Any, ...]]  # a step's name and arguments

# One statement: lock the order's products (in id order: no deadlock between orders), take the units
# only if every product has them — all or nothing, like the product's reservation.
RESERVE = """
WITH wanted AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:qty AS bigint[])) AS w(id, qty)),
locked AS (SELECT p.id, p.stock, w.qty FROM products p JOIN wanted w USING (id) ORDER BY p.id FOR UPDATE OF p)
UPDATE products p SET stock = p.stock - l.qty FROM locked l WHERE p.id = l.id
  AND (SELECT count(*) = cardinality(CAST(:ids AS bigint[])) AND bool_and(stock >= qty) FROM locked)
RETURNING p.id"""
RELEASE = """UPDATE products p SET stock = p.stock + w.qty
FROM unnest(CAST(:ids AS bigint[]), CAST(:qty AS bigint[])) AS w(id, qty) WHERE p.id = w.id"""


def saga(order_id: int, lines: Lines, amount: float, always_reserve: bool) -> Generator[Step, Any, str]:
    """The saga's decisions apart from how steps run: yields each step to run, receives its result,
    returns the outcome. Both flavours of the workflow drive it, so they are one saga."""
    if lines or always_reserve:
        reserve = ("reserve", (order_id, lines)) if lines else ("reserve_nothing", (order_id,))
        if not (yield reserve):
            return "cancelled"  # rejected: nothing was held
    if not (yield ("charge", (order_id, amount))):
        if lines:
            yield ("release", (order_id, lines))
        return "cancelled"
    if not (yield ("ship", (order_id,))):
        yield ("refund", (order_id, amount))
        if lines:
            yield ("release", (order_id, lines))
        return "cancelled"
    return "completed"


def _params(lines: Lines) -> dict[str, list[int]]:
    return {"ids": [p for p, _ in lines], "qty": [q for _, q in lines]}


# What the payment and shipping "providers" answer; a step's checkpoint records it.
OUTSIDE: dict[str, Callable[..., Any]] = {
    "reserve_nothing": lambda order_id: True,
    "charge": lambda order_id, amount: amount <= DECLINE_ABOVE,
    "refund": lambda order_id, amount: None,
    "ship": lambda order_id: True,
}


def _async_steps(ds: AsyncSQLAlchemyDatasource) -> dict[str, Callable[..., Awaitable[Any]]]:
    @ds.transaction(isolation_level="READ COMMITTED")
    async def reserve(order_id: int, lines: Lines) -> bool:
        rows = (await ds.sql_session().execute(sa.text(RESERVE), _params(lines))).all()
        return len(rows) == len(lines)

    @ds.transaction(isolation_level="READ COMMITTED")
    async def release(order_id: int, lines: Lines) -> None:
        await ds.sql_session().execute(sa.text(RELEASE), _params(lines))

    def plain(name: str, answer: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def step(*args: Any) -> Any:
            return answer(*args)

        return DBOS.step(name=name)(step)

    return {"reserve": reserve, "release": release} | {k: plain(k, f) for k, f in OUTSIDE.items()}


def _sync_steps(ds: SQLAlchemyDatasource) -> dict[str, Callable[..., Any]]:
    @ds.transaction(isolation_level="READ COMMITTED")
    def reserve_sync(order_id: int, lines: Lines) -> bool:
        rows = ds.sql_session().execute(sa.text(RESERVE), _params(lines)).all()
        return len(rows) == len(lines)

    @ds.transaction(isolation_level="READ COMMITTED")
    def release_sync(order_id: int, lines: Lines) -> None:
        ds.sql_session().execute(sa.text(RELEASE), _params(lines))

    plain = {k: DBOS.step(name=f"{k}_sync")(f) for k, f in OUTSIDE.items()}
    return {"reserve": reserve_sync, "release": release_sync} | plain


def _register(async_ds: AsyncSQLAlchemyDatasource, sync_ds: SQLAlchemyDatasource) -> tuple[Any, Any]:
    """Register both flavours' steps and workflows (before ``DBOS.launch``)."""
    steps, sync_steps = _async_steps(async_ds), _sync_steps(sync_ds)

    @DBOS.workflow()
    async def fulfil(order_id: int, lines: Lines, amount: float, always_reserve: bool) -> str:
        plan, result = saga(order_id, lines, amount, always_reserve), None
        try:
            while True:
                name, args = plan.send(result)
                result = await steps[name](*args)
        except StopIteration as end:
            return str(end.value)

    @DBOS.workflow()
    def fulfil_sync(order_id: int, lines: Lines, amount: float, always_reserve: bool) -> str:
        plan, result = saga(order_id, lines, amount, always_reserve), None
        try:
            while True:
                name, args = plan.send(result)
                result = sync_steps[name](*args)
        except StopIteration as end:
            return str(end.value)

    return fulfil, fulfil_sync


@dataclass
class Peer:
    """The launched saga: ``start`` returns once an order's workflow is durable, with its outcome to
    await. The workflow id is ``order-<id>``, so a retried start is the same workflow."""

    workflow: Any
    sync: bool
    starter: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "dbos-start"))

    async def start(self, order_id: int, lines: Lines, amount: float, always_reserve: bool) -> Awaitable[str]:
        args = (order_id, lines, amount, always_reserve)
        if not self.sync:
            with SetWorkflowID(f"order-{order_id}"):
                handle = await DBOS.start_workflow_async(self.workflow, *args)
            return handle.get_result()  # type: ignore[no-any-return]

        def begin() -> Any:
            with SetWorkflowID(f"order-{order_id}"):
                return DBOS.start_workflow(self.workflow, *args)

        handle = await asyncio.get_running_loop().run_in_executor(self.starter, begin)
        return asyncio.wrap_future(handle.future)


async def launch(dsn: str, pool: int, threads: int, sync: bool) -> Peer:
    """Configure DBOS on ``dsn``'s server (``pool`` connections, ``threads`` executor threads), create and
    fill ``products``, register the saga, launch; ``sync`` picks the flavour that ``start`` runs."""
    root = dsn.rsplit("/", 1)[0]
    no_ping = {"pool_pre_ping": False}
    DBOS(
        config={
            "name": "dbos-saga-peer",
            "system_database_url": f"{root}/{SYS_DB}",
            "sys_db_pool_size": pool,
            "max_executor_threads": threads,
            "db_engine_kwargs": no_ping,
            "log_level": "WARNING",
        }
    )
    engine = no_ping | {"pool_size": pool, "max_overflow": 0}
    async_ds = await AsyncSQLAlchemyDatasource.create(f"{root}/{APP_DB}", engine_kwargs=engine)
    sync_ds = await asyncio.to_thread(SQLAlchemyDatasource.create, f"{root}/{APP_DB}", engine)
    async with async_ds.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE products (id bigint PRIMARY KEY, stock bigint NOT NULL)"))
        await conn.execute(
            sa.text(f"INSERT INTO products SELECT g, {STOCK} FROM generate_series(1, {PRODUCTS}) g")
        )
    workflows = _register(async_ds, sync_ds)
    DBOS.launch()
    return Peer(workflows[sync], sync)


class _Line(BaseModel):
    product_id: int = Field(ge=1, le=PRODUCTS)
    quantity: int = Field(1, ge=1)


class _Order(BaseModel):
    user_id: int
    items: list[_Line]
    amount: float = Field(gt=0)


def http_app() -> FastAPI:
    """uvicorn factory of the ``--http`` API process: DBOS launched in its lifespan on ``DBOS_SAGA_DSN``
    with ``DBOS_SAGA_POOL`` connections and ``DBOS_SAGA_THREADS`` threads (``DBOS_SAGA_SYNC=1``: the sync
    flavour; ``DBOS_SAGA_ALWAYS_RESERVE=1``: ``always_reserve``).
    ``POST /api/v1/orders`` (saga_load's body) answers 201 once the order's workflow is done."""
    always = os.environ.get("DBOS_SAGA_ALWAYS_RESERVE") == "1"
    ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        env = os.environ
        pool, threads = int(env["DBOS_SAGA_POOL"]), int(env["DBOS_SAGA_THREADS"])
        sync = env["DBOS_SAGA_SYNC"] == "1"
        app.state.peer = await launch(env["DBOS_SAGA_DSN"], pool, threads, sync)
        yield
        DBOS.destroy()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> str:
        return "ok"

    @app.post("/api/v1/orders", status_code=201)
    async def create(order: _Order) -> dict[str, Any]:
        order_id = next(ids)
        lines = [(line.product_id, line.quantity) for line in order.items]
        outcome = await app.state.peer.start(order_id, lines, order.amount, always)
        return {"order_id": order_id, "status": await outcome}

    return app
