"""Snapshot objects → snapshot engine runs (``app.service.snapshotter``), once or on a cron ``schedule``.

The object's daemon loops: it runs the engine when the spec's generation has not been run yet or the
schedule is due, reports counts, ``lastRunAt`` and ``nextRunAt``, and sleeps until the next run (waking
every second to notice spec changes and deletion). ``schedule`` is a 5-field cron expression (a 6th
field, seconds, is accepted too). Transient failures are reported and retried after a back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from app.readmodel import runs
from app.service.snapshotter import SnapshotRequest, SnapshotResult, Snapshotter
from eda_operator import observe
from eda_operator.clients import Clients
from eda_operator.conditions import StatusTracker, now_iso
from eda_operator.errors import INVALID_SPEC, DatabaseUnavailable, InvalidSpec, classify

Notify = Callable[[str, str, bool], None]
log = logging.getLogger(__name__)
RETRY_S = 5.0


def parse_spec(spec: Mapping[str, Any]) -> tuple[SnapshotRequest, str | None]:
    """The engine request and the cron schedule; ``InvalidSpec``/``InvalidSnapshotRequest`` if invalid."""
    aggregate_type = spec.get("aggregateType")
    if not isinstance(aggregate_type, str) or not aggregate_type:
        raise InvalidSpec("spec.aggregateType is required")
    ids = spec.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids)):
        raise InvalidSpec("spec.ids must be a list of non-empty strings")
    numbers: dict[str, int | None] = {}
    for key in ("minEventsSinceSnapshot", "retain"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidSpec(f"spec.{key} must be an integer, got {value!r}")
        numbers[key] = value
    schedule = spec.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not croniter.is_valid(schedule)):
        raise InvalidSpec(f"spec.schedule is not a valid cron expression: {schedule!r}")
    request = SnapshotRequest(
        aggregate_type=aggregate_type,
        ids=tuple(ids) if ids is not None else None,
        min_events=numbers["minEventsSinceSnapshot"],
        retain=numbers["retain"] if numbers["retain"] is not None else 3,
    )
    request.validate()
    return request, schedule


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time ``schedule`` fires after ``after`` (UTC)."""
    fire: datetime = croniter(schedule, after).get_next(datetime)
    return fire if fire.tzinfo else fire.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def due_at(tracker: StatusTracker, schedule: str | None) -> datetime | None:
    """When the next run is due (``now`` for a generation not yet run; ``None``: never again)."""
    if tracker.get("observedGeneration") != tracker.generation:
        return datetime.now(UTC)
    if schedule is None:
        return None
    return parse_iso(tracker.get("nextRunAt")) or datetime.now(UTC)


def report(tracker: StatusTracker, result: SnapshotResult, schedule: str | None, started: datetime) -> None:
    runs = int(tracker.get("runs") or 0) + 1
    message = f"{result.written} snapshots written, {result.skipped} up to date"
    if result.missing:
        message += f", {len(result.missing)} ids not found"
    if result.retained_cap is not None:
        message += f"; retain capped at the bucket history ({result.retained_cap})"
    tracker.update(
        phase="Scheduled" if schedule else "Succeeded",
        observedGeneration=tracker.generation,
        aggregatesScanned=result.scanned,
        snapshotsWritten=result.written,
        snapshotsSkipped=result.skipped,
        missingIds=result.missing or None,
        runs=runs,
        lastRunAt=iso(started),
        nextRunAt=iso(next_run(schedule, datetime.now(UTC))) if schedule else None,
        message=message,
    )
    tracker.succeed("SnapshotsWritten", message)


async def run_once(
    request: SnapshotRequest,
    schedule: str | None,
    tracker: StatusTracker,
    clients: Clients,
    notify: Notify,
    *,
    source: runs.RunSource | None = None,
) -> bool:
    """One engine run, recorded in ``eda.maintenance_runs`` and traced (``operator/observe.py``);
    ``False`` after a transient failure (to be retried)."""
    with observe.reconciling("Snapshot", source) as reconcile:
        ok = await _run_once(request, schedule, tracker, clients, notify, source)
        reconcile.outcome = "succeeded" if tracker.phase in ("Succeeded", "Scheduled") else "failed"
        if not ok:
            reconcile.outcome = "retrying"
        return ok


async def _run_once(  # noqa: PLR0917 - the arguments of run_once, passed on
    request: SnapshotRequest,
    schedule: str | None,
    tracker: StatusTracker,
    clients: Clients,
    notify: Notify,
    source: runs.RunSource | None,
) -> bool:
    started = datetime.now(UTC)
    tracker.update(phase="Running")
    tracker.set_condition("Running", True, "Snapshotting")

    def progress(so_far: SnapshotResult, candidates: int) -> None:
        tracker.update(
            aggregatesScanned=so_far.scanned, snapshotsWritten=so_far.written, candidates=candidates
        )

    run_id = runs.new_run_id("operator-snapshot")
    recorder: runs.RunRecorder | None = None
    try:
        recorder = await _recorder(clients, run_id, request, source)
        engine = Snapshotter(await clients.nats(), await clients.store(), await clients.snapshots())
        if recorder is None:
            result = await engine.run(request, progress)
        else:
            async with recorder.writing():
                result = await engine.run(request, recorder.snapshot_progress(progress))
    except asyncio.CancelledError:
        await runs.record_interrupted(recorder, run_id)
        raise
    except Exception as exc:
        failure = classify(exc)
        phase = "Pending" if failure.transient else "Failed"
        await runs.record_failed(recorder, run_id, failure.message, retrying=failure.transient, phase=phase)
        tracker.update(phase=phase, message=failure.message)
        tracker.set_condition("Running", False, failure.reason, failure.message)
        tracker.set_condition("Failed", not failure.transient, failure.reason, failure.message)
        if not failure.transient:
            tracker.update(observedGeneration=tracker.generation)
        notify(failure.reason, failure.message, True)
        return not failure.transient
    report(tracker, result, schedule, started)
    notify("SnapshotsWritten", tracker.get("message") or "", False)
    if recorder is not None:
        await runs.record_finish(
            recorder.pool,
            run_id,
            "succeeded",
            progress=runs.snapshot_fields(result, result.scanned),
            message=tracker.get("message"),
        )
    return True


async def _recorder(
    clients: Clients, run_id: str, request: SnapshotRequest, source: runs.RunSource | None
) -> runs.RunRecorder | None:
    """The run's row in ``eda.maintenance_runs``, started; ``None`` when PostgreSQL is unreachable (a
    snapshot needs only NATS, so the run goes on unrecorded)."""
    try:
        pool = await clients.pool()
    except DatabaseUnavailable as exc:
        log.warning("snapshot run %s not recorded: %s", run_id, exc)
        return None
    origin = source or runs.RunSource("operator")
    await runs.record_start(pool, run_id, "snapshot", request.aggregate_type, origin)
    return runs.RunRecorder(pool, run_id)


def invalid(tracker: StatusTracker, exc: ValueError, notify: Notify) -> None:
    failure = classify(exc)
    if tracker.get("observedGeneration") == tracker.generation and tracker.phase == "Failed":
        return
    tracker.update(
        phase="Failed", observedGeneration=tracker.generation, message=failure.message, nextRunAt=None
    )
    tracker.set_condition("Failed", True, INVALID_SPEC, failure.message)
    tracker.set_condition("Succeeded", False, INVALID_SPEC, failure.message)
    notify(INVALID_SPEC, failure.message, True)


async def tick(
    spec: Mapping[str, Any],
    tracker: StatusTracker,
    clients: Clients,
    notify: Notify,
    source: runs.RunSource | None = None,
) -> float:
    """One iteration of the daemon loop; returns how long to sleep before the next one."""
    try:
        request, schedule = parse_spec(spec)
    except ValueError as exc:
        invalid(tracker, exc, notify)
        return 1.0
    due = due_at(tracker, schedule)
    if due is None:
        return 1.0
    wait = (due - datetime.now(UTC)).total_seconds()
    if wait > 0:
        if schedule and tracker.get("nextRunAt") is None:
            tracker.update(nextRunAt=iso(due))
        return min(wait, 1.0)
    if not tracker.get("startedAt"):
        tracker.update(startedAt=now_iso())
    ok = await run_once(request, schedule, tracker, clients, notify, source=source)
    return 0.0 if ok else RETRY_S
