"""The rebuild engine: replay ``EVENTS`` into a shadow schema, catch up, swap it in atomically.

1. **Exclusive**: one rebuild per projection at a time (session ``pg_advisory_lock`` on
   ``eda.rebuild.<projection>``); a second one reports phase ``Waiting`` until the first ends.
2. **Bulk**: the shadow schema ``<live>_rebuild_<id>`` gets every read-model migration
   (``create_readmodel_schema``); events up to the target sequence are read in batches (direct get,
   next batch prefetched while the current one is folded) and folded in memory with the projection's
   own fold (``BulkFold``, equal to ``fold_views``); timeline rows are COPYed per batch, order rows
   once at the end (their final state).
3. **Catch-up**: events appended meanwhile are applied with the projection's ``apply_batch``.
4. **Swap**, in ONE transaction: lock the live checkpoint table (``EXCLUSIVE``: the live projector's
   ``SELECT … FOR UPDATE`` waits), apply the last events, rename live → old and shadow → live. The live
   checkpoint moves with the schema (the projector notices and resumes from it). The old schema is
   dropped right after the commit. Readers see the old model until the commit, the new one after.
5. **Cancel** (task cancellation or any error before the swap): the shadow schema is dropped, the live
   model untouched.

``from_sequence`` N > 1 is a partial rebuild: orders with no event at sequence ≥ N are copied from the
live model as they are; every order with such an event is rebuilt from its complete history.
``to_sequence`` ends the bulk phase (default: the stream's last sequence at start); the catch-up always
runs to the live end, so a swapped-in model is never behind the live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace

import asyncpg
import orjson

from app.eventstore.envelope import RawMessage
from app.eventstore.ports import EventStore
from app.readmodel import fold
from app.readmodel.apply import apply_batch
from app.readmodel.db import advisory_key, init_connection, quote_ident
from app.readmodel.migrations import create_readmodel_schema
from app.readmodel.rows import ORDER_COLUMNS, TIMELINE_COLUMNS, order_row, timeline_row
from app.readmodel.sql import read_checkpoint, set_checkpoint
from app.telemetry import batch_consumer_span, tracer

PROJECTIONS = {fold.PROJECTION: fold.SUBJECTS}


class InvalidRebuild(ValueError):
    """The request can never succeed (unknown projection, from > to, ...)."""


@dataclass(frozen=True, slots=True)
class RebuildRequest:
    """What to rebuild; ``rebuild_id`` names the shadow schema (default: random)."""

    projection: str = fold.PROJECTION
    live_schema: str = "readmodel"
    from_sequence: int = 1
    to_sequence: int | None = None
    batch_size: int = 5000
    rebuild_id: str = ""

    def validate(self) -> RebuildRequest:
        """The request with its id filled in; ``InvalidRebuild`` if it can never succeed."""
        if self.projection not in PROJECTIONS:
            raise InvalidRebuild(f"unknown projection {self.projection!r} (known: {sorted(PROJECTIONS)})")
        if self.from_sequence < 1:
            raise InvalidRebuild("fromSequence must be >= 1")
        if self.to_sequence is not None and self.to_sequence < self.from_sequence:
            raise InvalidRebuild(f"fromSequence {self.from_sequence} > toSequence {self.to_sequence}")
        if not 1 <= self.batch_size <= 50_000:
            raise InvalidRebuild("batchSize must be within 1..50000")
        rebuild_id = self.rebuild_id or uuid.uuid4().hex[:12]
        done = replace(self, rebuild_id=rebuild_id)
        try:
            quote_ident(done.shadow_schema)
        except ValueError as exc:
            raise InvalidRebuild(str(exc)) from None
        return done

    @property
    def shadow_schema(self) -> str:
        return f"{self.live_schema}_rebuild_{self.rebuild_id}"[:63]


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report; ``phase`` is Waiting, Running (bulk), CatchingUp, Swapping or Succeeded."""

    phase: str
    events_replayed: int = 0
    target_sequence: int = 0
    percent: int = 0
    events_per_second: float = 0.0
    eta_seconds: float | None = None
    orders: int = 0
    last_sequence: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What a finished rebuild did."""

    events_replayed: int
    orders: int
    last_sequence: int
    seconds: float
    shadow_schema: str


def _percent(done_seq: int, start: int, target: int) -> int:
    if target < start:
        return 100
    return min(100, int(100 * (done_seq - start + 1) / (target - start + 1)))


async def _binary_jsonb(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


@contextlib.contextmanager
def _settled_heap() -> Iterator[Callable[[], None]]:
    """For the bulk phase: yields ``settle()``, to call after each batch, which moves everything kept so
    far into the collector's permanent generation (``gc.freeze``); the heap goes back at the end.

    The fold keeps a growing heap of per-order state, and every full collection used to rescan all of
    it: more than half of the bulk phase's CPU time (decode + fold + rows: 20 → 8 µs/event without
    that). Unlike pausing the collector, reference cycles created meanwhile — by this rebuild or by
    other tasks of the process, e.g. the operator's — are still collected."""
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


async def drop_schema(pool: asyncpg.Pool, schema: str) -> None:
    """``DROP SCHEMA … CASCADE`` if it exists (shadow clean-up; idempotent)."""
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


@contextlib.asynccontextmanager
async def exclusive(pool: asyncpg.Pool, projection: str, report: ProgressFn) -> AsyncIterator[None]:
    """Hold the per-projection rebuild lock; report ``Waiting`` while another rebuild holds it."""
    key = advisory_key(f"eda.rebuild.{projection}")
    async with pool.acquire() as conn:
        waiting = False
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            if not waiting:
                report(Progress(phase="Waiting"))
                waiting = True
            await asyncio.sleep(0.5)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", key))


class Rebuild:
    """One rebuild run; ``await Rebuild(...).run()``."""

    def __init__(
        self,
        store: EventStore,
        pool: asyncpg.Pool,
        request: RebuildRequest,
        progress: ProgressFn | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._req = request.validate()
        self._report = progress or (lambda _p: None)
        self._subjects = PROJECTIONS[self._req.projection]

    @property
    def request(self) -> RebuildRequest:
        return self._req

    async def run(self) -> RebuildResult:
        """Run to the swap; on cancellation or error the shadow schema is dropped and live untouched."""
        async with exclusive(self._pool, self._req.projection, self._report):
            shadow = self._req.shadow_schema
            try:
                with tracer().start_as_current_span(
                    f"rebuild {self._req.projection}", attributes={"eda.projection": self._req.projection}
                ):
                    return await self._run(shadow)
            except BaseException:
                await asyncio.shield(drop_schema(self._pool, shadow))
                raise

    async def _run(self, shadow: str) -> RebuildResult:
        req, started = self._req, time.monotonic()
        target = req.to_sequence or await self._store.last_sequence()
        async with self._pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(shadow)} CASCADE")
            async with conn.transaction():
                await create_readmodel_schema(conn, shadow)
            touched = await self._touched(req.from_sequence, target) if req.from_sequence > 1 else None
            await _binary_jsonb(conn)  # binary COPY needs a binary jsonb codec (the pool's is text)
            try:
                with _settled_heap() as settle:
                    replayed, orders = await self._bulk(conn, shadow, target, touched, started, settle=settle)
            finally:
                await init_connection(conn)
            if touched is not None:
                orders += await self._copy_untouched(conn, shadow, touched)
            last = max(target, await read_checkpoint(conn, shadow, req.projection))
            await set_checkpoint(conn, shadow, last, req.projection)
            self._report(
                self._progress("CatchingUp", replayed, target, started=started, orders=orders, last=last)
            )
            while True:  # catch up outside the lock until (nearly) at the end
                n, last = await self._catch_up(conn, shadow, last)
                replayed += n
                if n < req.batch_size:
                    break
            self._report(
                self._progress("Swapping", replayed, target, started=started, orders=orders, last=last)
            )
            n, last = await self._swap(conn, shadow)
            replayed += n
            orders = int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(req.live_schema)}.orders"))
        result = RebuildResult(replayed, orders, last, time.monotonic() - started, shadow)
        self._report(self._progress("Succeeded", replayed, target, started=started, orders=orders, last=last))
        return result

    def _progress(
        self, phase: str, replayed: int, target: int, *, started: float, orders: int, last: int
    ) -> Progress:
        start = self._req.from_sequence
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = replayed / elapsed
        percent = _percent(min(last, target), start, target) if phase == "Running" else 100
        eta = None
        if phase == "Running" and last >= start:  # by sequences: other aggregates' events count too
            eta = round(elapsed * max(target - last, 0) / max(last - start + 1, 1), 1)
        return Progress(phase, replayed, target, percent, round(rate, 1), eta, orders, last)

    async def _batches(self, start: int, end: int) -> AsyncIterator[list[RawMessage]]:
        """Raw batches of ``[start, end]``, the next one prefetched while the caller works."""
        size = self._req.batch_size

        async def fetch(seq: int) -> list[RawMessage]:
            return await self._store.read_raw(seq, limit=size, subjects=self._subjects)

        pending: asyncio.Task[list[RawMessage]] | None = asyncio.ensure_future(fetch(start))
        try:
            while pending is not None:
                batch = [m for m in await pending if m.sequence <= end]
                pending = None
                if batch and batch[-1].sequence < end:
                    pending = asyncio.ensure_future(fetch(batch[-1].sequence + 1))
                if batch:
                    yield batch
        finally:
            if pending is not None:
                pending.cancel()

    async def _touched(self, start: int, end: int) -> set[int]:
        """Order ids with an event in ``[start, end]`` (from subjects, nothing decoded)."""
        ids: set[int] = set()
        async for batch in self._batches(start, end):
            for m in batch:
                with contextlib.suppress(ValueError):
                    ids.add(int(m.subject.rsplit(".", 1)[-1]))
        return ids

    async def _bulk(
        self,
        conn: asyncpg.Connection,
        shadow: str,
        target: int,
        touched: set[int] | None,
        started: float,
        *,
        settle: Callable[[], None],
    ) -> tuple[int, int]:
        """Fold ``[1, target]`` (only ``touched`` orders if given); COPY timeline then order rows."""
        codec = self._store.codec
        folded = fold.BulkFold()
        replayed, last, last_report = 0, 0, 0.0
        async for batch in self._batches(1 if touched is not None else self._req.from_sequence, target):
            events = [codec.decode(m.data, m.sequence) for m in batch]
            if touched is not None:
                events = [e for e in events if fold.order_id_of(e) in touched]
            # a span per batch, linked to (up to 128 of) its events' producers
            with batch_consumer_span(fold.SUBJECTS, [e.envelope.traceparent for e in events]):
                applied = folded.fold(events)
                if applied:
                    rows = [timeline_row(e) for e in applied]
                    await conn.copy_records_to_table(
                        "order_events", schema_name=shadow, columns=TIMELINE_COLUMNS, records=rows
                    )
            replayed += len(batch)
            last = batch[-1].sequence
            settle()
            if time.monotonic() - last_report >= 0.2:
                last_report = time.monotonic()
                self._report(
                    self._progress(
                        "Running", replayed, target, started=started, orders=len(folded), last=last
                    )
                )
        await conn.copy_records_to_table(
            "orders",
            schema_name=shadow,
            columns=ORDER_COLUMNS,
            records=[order_row(v) for v in folded.views().values()],
        )
        return replayed, len(folded)

    async def _copy_untouched(self, conn: asyncpg.Connection, shadow: str, touched: set[int]) -> int:
        """Partial rebuild: copy live orders (and their timelines) that no replayed event touched."""
        live, dst = quote_ident(self._req.live_schema), quote_ident(shadow)
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{live}.orders")
        if exists is None:
            return 0
        ids = sorted(touched)
        await conn.execute(
            f"INSERT INTO {dst}.order_events SELECT * FROM {live}.order_events "
            "WHERE NOT order_id = ANY($1::bigint[])",
            ids,
        )
        status = await conn.execute(
            f"INSERT INTO {dst}.orders SELECT * FROM {live}.orders WHERE NOT order_id = ANY($1::bigint[])",
            ids,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def _catch_up(self, conn: asyncpg.Connection, shadow: str, after: int) -> tuple[int, int]:
        """Apply one batch of events after ``after`` to the shadow; returns (events read, new last)."""
        raws = await self._store.read_raw(after + 1, limit=self._req.batch_size, subjects=self._subjects)
        if not raws:
            return 0, after
        events = self._store.codec.decode_all(raws)
        with batch_consumer_span(fold.SUBJECTS, [e.envelope.traceparent for e in events]):
            await apply_batch(conn, shadow, events, projection=self._req.projection, notify=False)
        return len(raws), raws[-1].sequence

    async def _swap(self, conn: asyncpg.Connection, shadow: str) -> tuple[int, int]:
        """Final catch-up under the live checkpoint lock, then rename both schemas in one transaction."""
        live = self._req.live_schema
        old = f"{live}_old_{self._req.rebuild_id}"[:63]
        replayed = 0
        async with conn.transaction():
            live_exists = await conn.fetchval("SELECT to_regclass($1)", f"{quote_ident(live)}.orders")
            if live_exists is not None:
                await conn.execute(f"LOCK TABLE {quote_ident(live)}.projection_checkpoints IN EXCLUSIVE MODE")
            last = await read_checkpoint(conn, shadow, self._req.projection)
            while True:
                n, last = await self._catch_up(conn, shadow, last)
                replayed += n
                if n == 0:
                    break
            if live_exists is not None:
                await conn.execute(f"ALTER SCHEMA {quote_ident(live)} RENAME TO {quote_ident(old)}")
            else:
                await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(live)} CASCADE")
            await conn.execute(f"ALTER SCHEMA {quote_ident(shadow)} RENAME TO {quote_ident(live)}")
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(old)} CASCADE")
        return replayed, last
