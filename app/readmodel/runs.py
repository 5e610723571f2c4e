"""A record of every rebuild and snapshot run in ``eda.maintenance_runs`` (migration 0005).

The CLI (``eda rebuild``/``eda snapshot``) and the operator record their runs here so the console's
Health page shows running and finished runs with their progress — the API itself has no Kubernetes
access. The engines are not touched: the callers wrap the engine's progress callback with
``RunRecorder.rebuild_progress``/``snapshot_progress``, which keeps the latest report and lets a
background writer upsert it at most once per ``interval`` (1 s), plus a heartbeat every ``HEARTBEAT_S``
while nothing changes (a rebuild waiting for the lock is still alive). A run whose row is still
``running`` but was not updated for ``STALE_AFTER_S`` shows as stalled (its process died).

Recording never fails a run: database errors here are logged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import asyncpg

from app.readmodel.rebuild import Progress, ProgressFn

log = logging.getLogger(__name__)

Kind = Literal["rebuild", "snapshot"]
Status = Literal["running", "succeeded", "failed", "cancelled"]
INTERVAL_S = 1.0
HEARTBEAT_S = 15.0
STALE_AFTER_S = 60.0
RETENTION_DAYS = 30
RECENT = 20


@dataclass(frozen=True, slots=True)
class RunSource:
    """Who started a run: the CLI, or the operator for the custom resource ``namespace/name``."""

    origin: Literal["cli", "operator"] = "cli"
    namespace: str | None = None
    name: str | None = None


def new_run_id(prefix: str) -> str:
    """A fresh run id, e.g. ``cli-snapshot-3f2a…``."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def rebuild_fields(p: Progress) -> dict[str, Any]:
    """The ``progress`` JSON of a rebuild report."""
    return {
        "events_replayed": p.events_replayed,
        "target_sequence": p.target_sequence,
        "last_sequence": p.last_sequence,
        "percent": p.percent,
        "events_per_second": p.events_per_second,
        "eta_seconds": p.eta_seconds,
        "orders": p.orders,
    }


class SnapshotCounts(Protocol):
    """What the snapshot engine reports so far (``app.service.snapshotter.SnapshotResult``)."""

    @property
    def scanned(self) -> int: ...

    @property
    def written(self) -> int: ...

    @property
    def skipped(self) -> int: ...


def snapshot_fields(counts: SnapshotCounts, candidates: int) -> dict[str, Any]:
    """The ``progress`` JSON of a snapshot report."""
    percent = 100 if candidates <= 0 else min(100, int(100 * counts.scanned / candidates))
    return {
        "scanned": counts.scanned,
        "written": counts.written,
        "skipped": counts.skipped,
        "candidates": candidates,
        "percent": percent,
    }


async def _quietly(what: str, run_id: str, work: Any) -> None:
    try:
        await work
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.warning("maintenance run %s: could not record %s: %s", run_id, what, exc)


async def record_start(
    pool: asyncpg.Pool,
    run_id: str,
    kind: Kind,
    target: str,
    source: RunSource,
    *,
    phase: str = "Pending",
    message: str | None = None,
) -> None:
    """Insert (or restart, for a retried run with the same id) the row of a run, status ``running``.
    Also forgets finished runs older than ``RETENTION_DAYS``."""
    sql = """
        INSERT INTO eda.maintenance_runs
            (id, kind, target, source, k8s_namespace, k8s_name, status, phase, message)
        VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8)
        ON CONFLICT (id) DO UPDATE SET
            status = 'running', phase = EXCLUDED.phase, message = EXCLUDED.message,
            started_at = now(), updated_at = now(), finished_at = NULL
    """

    async def work() -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                sql, run_id, kind, target, source.origin, source.namespace, source.name, phase, message
            )
            await conn.execute(
                "DELETE FROM eda.maintenance_runs WHERE finished_at < now() - make_interval(days => $1)",
                RETENTION_DAYS,
            )

    await _quietly("its start", run_id, work())


async def record_progress(
    pool: asyncpg.Pool, run_id: str, phase: str | None = None, progress: dict[str, Any] | None = None
) -> None:
    """Update phase/progress of a running run (``None``: keep; both ``None``: heartbeat only)."""
    await _quietly(
        "progress",
        run_id,
        pool.execute(
            "UPDATE eda.maintenance_runs SET phase = COALESCE($2, phase), "
            "progress = COALESCE($3::jsonb, progress), updated_at = now() "
            "WHERE id = $1 AND finished_at IS NULL",
            run_id,
            phase,
            progress,
        ),
    )


async def record_finish(
    pool: asyncpg.Pool,
    run_id: str,
    status: Status,
    *,
    phase: str | None = None,
    progress: dict[str, Any] | None = None,
    message: str | None = None,
) -> None:
    """Mark a run finished (``phase`` defaults to the status capitalised)."""
    await _quietly(
        "its end",
        run_id,
        pool.execute(
            "UPDATE eda.maintenance_runs SET status = $2, phase = $3, "
            "progress = COALESCE($4::jsonb, progress), message = $5, updated_at = now(), "
            "finished_at = now() WHERE id = $1",
            run_id,
            status,
            phase or status.capitalize(),
            progress,
            message,
        ),
    )


async def record_interrupted(recorder: RunRecorder | None, run_id: str) -> None:
    """A run cancelled from outside (deletion, shutdown): ``cancelled``, recorded even while the caller
    is being cancelled itself."""
    if recorder is not None:
        await asyncio.shield(record_finish(recorder.pool, run_id, "cancelled", message="cancelled"))


async def record_failed(
    recorder: RunRecorder | None, run_id: str, message: str, *, retrying: bool, phase: str | None = None
) -> None:
    """A run that failed (``retrying``: it will be attempted again)."""
    if recorder is not None:
        note = " (retrying)" if retrying else ""
        await record_finish(recorder.pool, run_id, "failed", phase=phase, message=message + note)


class RunRecorder:
    """Turns engine progress callbacks into (rate-bounded) updates of one run's row.

    ``async with recorder.writing():`` runs the background writer; the wrapped callbacks only keep the
    latest report (they are called synchronously from the engine) and wake the writer.
    """

    def __init__(self, pool: asyncpg.Pool, run_id: str, *, interval: float = INTERVAL_S) -> None:
        self.pool = pool
        self.run_id = run_id
        self.interval = interval
        self.latest: tuple[str | None, dict[str, Any] | None] = (None, None)
        self.writes = 0
        self._changed = asyncio.Event()

    def offer(self, phase: str | None, progress: dict[str, Any] | None) -> None:
        """Keep ``phase``/``progress`` as the latest report; the writer stores it soon."""
        self.latest = (phase, progress)
        self._changed.set()

    def rebuild_progress(self, inner: ProgressFn | None = None) -> ProgressFn:
        """A rebuild engine callback: calls ``inner`` and records the report."""

        def report(p: Progress) -> None:
            if inner is not None:
                inner(p)
            self.offer(p.phase, rebuild_fields(p))

        return report

    def snapshot_progress[C: SnapshotCounts](
        self, inner: Callable[[C, int], None] | None = None
    ) -> Callable[[C, int], None]:
        """A snapshot engine callback ``(result so far, candidates)``: calls ``inner`` and records."""

        def report(so_far: C, candidates: int) -> None:
            if inner is not None:
                inner(so_far, candidates)
            self.offer("Running", snapshot_fields(so_far, candidates))

        return report

    async def flush(self) -> None:
        """Write the latest report now (if any)."""
        phase, progress = self.latest
        self._changed.clear()
        await record_progress(self.pool, self.run_id, phase, progress)
        self.writes += 1

    async def _writer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), HEARTBEAT_S)
            await self.flush()  # a report, or a heartbeat after HEARTBEAT_S without one
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[RunRecorder]:
        """Run the background writer for the body's duration (stopped, not flushed, at the end:
        ``record_finish`` writes the final state)."""
        task = asyncio.create_task(self._writer(), name=f"record {self.run_id}")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _row(r: asyncpg.Record) -> dict[str, Any]:
    status = r["status"]
    stalled = status == "running" and r["idle_s"] > STALE_AFTER_S
    return {
        "id": r["id"],
        "kind": r["kind"],
        "target": r["target"],
        "source": r["source"],
        "k8s_namespace": r["k8s_namespace"],
        "k8s_name": r["k8s_name"],
        "status": "stalled" if stalled else status,
        "phase": r["phase"],
        "started_at": r["started_at"].isoformat(),
        "updated_at": r["updated_at"].isoformat(),
        "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
        "progress": dict(r["progress"] or {}),
        "message": r["message"],
    }


async def list_runs(pool: asyncpg.Pool, recent: int = RECENT) -> dict[str, list[dict[str, Any]]]:
    """Unfinished runs (running or stalled: not updated for ``STALE_AFTER_S``) and the last ``recent``
    finished ones, newest first."""
    columns = (
        "id, kind, target, source, k8s_namespace, k8s_name, status, phase, started_at, updated_at, "
        "finished_at, progress, message, extract(epoch FROM now() - updated_at)::float8 AS idle_s"
    )
    async with pool.acquire() as conn:
        running = await conn.fetch(
            f"SELECT {columns} FROM eda.maintenance_runs WHERE finished_at IS NULL ORDER BY started_at DESC"
        )
        finished = await conn.fetch(
            f"SELECT {columns} FROM eda.maintenance_runs WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at DESC LIMIT $1",
            recent,
        )
    return {"running": [_row(r) for r in running], "finished": [_row(r) for r in finished]}
