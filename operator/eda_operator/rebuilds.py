"""ProjectionRebuild objects → rebuild engine runs (``app.readmodel.rebuild``).

One run per object, started by its kopf daemon: the spec is parsed (invalid → ``Failed/InvalidSpec``
for good), the engine runs as a task whose progress lands in the object's ``StatusTracker`` (published
by a timer at a bounded rate), and stopping the daemon (object deleted, operator exiting) cancels the
task, which drops the shadow schema. Transient failures (NATS/PostgreSQL unreachable) are reported and
re-raised for kopf to retry. A finished object (Succeeded/Failed for its generation) is never re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.readmodel import runs
from app.readmodel.rebuild import Progress, Rebuild, RebuildRequest, RebuildResult, drop_schema
from eda_operator import observe
from eda_operator.clients import Clients
from eda_operator.conditions import StatusTracker, finished, now_iso
from eda_operator.errors import INVALID_SPEC, Failure, InvalidSpec, classify

TERMINAL = ("Succeeded", "Failed")
Notify = Callable[[str, str, bool], None]  # (reason, message, warning) → a Kubernetes Event


def rebuild_id(uid: str) -> str:
    """The shadow-schema suffix of an object: stable across operator restarts and deletion."""
    return uid.replace("-", "")[:12].lower()


def _int(spec: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"spec.{key} must be an integer, got {value!r}")
    return value


def parse_spec(spec: Mapping[str, Any], uid: str, live_schema: str) -> RebuildRequest:
    """The engine request of a ProjectionRebuild spec; ``InvalidSpec``/``InvalidRebuild`` if invalid."""
    projection = spec.get("projection")
    if not isinstance(projection, str) or not projection:
        raise InvalidSpec("spec.projection is required")
    return RebuildRequest(
        projection=projection,
        live_schema=live_schema,
        from_sequence=_int(spec, "fromSequence", 1) or 1,
        to_sequence=_int(spec, "toSequence", None),
        batch_size=_int(spec, "batchSize", 5000) or 5000,
        rebuild_id=rebuild_id(uid),
    ).validate()


def on_progress(tracker: StatusTracker, notify: Notify) -> Callable[[Progress], None]:
    """The engine's progress callback: fields and conditions into ``tracker``."""

    def report(p: Progress) -> None:
        if p.phase == "Waiting":
            if tracker.phase != "Waiting":
                notify("Waiting", "another rebuild of this projection is running", False)
            tracker.update(phase="Waiting", message="waiting for another rebuild of this projection")
            tracker.set_condition("Waiting", True, "AnotherRebuildRunning", "waiting for the rebuild lock")
            tracker.set_condition("Running", False, "Waiting")
            return
        if tracker.phase != "Running" and p.phase != "Succeeded":
            notify("Started", "replaying events into the shadow schema", False)
            tracker.update(phase="Running", message=None)
        tracker.set_condition("Waiting", False, "LockAcquired")
        if p.phase != "Succeeded":
            tracker.set_condition("Running", True, p.phase if p.phase != "Running" else "Replaying")
        tracker.update(
            eventsReplayed=p.events_replayed,
            targetSequence=p.target_sequence,
            lastSequence=p.last_sequence,
            percent=p.percent,
            eventsPerSecond=p.events_per_second,
            etaSeconds=p.eta_seconds,
            orders=p.orders,
        )

    return report


def succeeded(tracker: StatusTracker, result: RebuildResult) -> None:
    tracker.update(
        phase="Succeeded",
        observedGeneration=tracker.generation,
        finishedAt=now_iso(),
        percent=100,
        etaSeconds=None,
        message=f"rebuilt {result.orders} orders from {result.events_replayed} events "
        f"in {result.seconds:.1f}s",
    )
    tracker.succeed("Swapped", "the rebuilt read model is live")


def failed(tracker: StatusTracker, failure: Failure) -> None:
    """Report ``failure``: terminal when permanent, ``Pending`` (retrying) when transient."""
    tracker.update(message=failure.message)
    tracker.set_condition("Running", False, failure.reason, failure.message)
    tracker.set_condition("Waiting", False, failure.reason)
    if failure.transient:
        tracker.update(phase="Pending")
        tracker.set_condition("Succeeded", None, failure.reason, "retrying")
        return
    tracker.update(phase="Failed", observedGeneration=tracker.generation, finishedAt=now_iso())
    tracker.set_condition("Succeeded", False, failure.reason, failure.message)
    tracker.set_condition("Failed", True, failure.reason, failure.message)


async def run_rebuild(
    *,
    spec: Mapping[str, Any],
    uid: str,
    tracker: StatusTracker,
    clients: Clients,
    stopped: Awaitable[Any],
    notify: Notify,
    source: runs.RunSource | None = None,
) -> Failure | None:
    """Run (or skip, when finished) the rebuild of one object; returns the transient failure to retry.
    The run is recorded in ``eda.maintenance_runs`` (``source``: the object's namespace/name) and traced
    (``operator/observe.py``: the engine's spans are children of the reconcile's)."""
    if finished(tracker.status, tracker.generation, TERMINAL):
        return None
    with observe.reconciling("ProjectionRebuild", source) as reconcile:
        try:
            request = parse_spec(spec, uid, clients.settings.readmodel_schema)
        except ValueError as exc:
            reconcile.outcome = "invalid"
            failure = classify(exc)
            failed(tracker, failure)
            notify(INVALID_SPEC, failure.message, True)
            return None
        retry = await _run(
            request, tracker=tracker, clients=clients, stopped=stopped, notify=notify, source=source
        )
        reconcile.from_phase(tracker.phase)
        return retry


async def _run(  # noqa: PLR0917 - the arguments of run_rebuild, passed on
    request: RebuildRequest,
    tracker: StatusTracker,
    clients: Clients,
    stopped: Awaitable[Any],
    notify: Notify,
    source: runs.RunSource | None,
) -> Failure | None:
    if not tracker.get("startedAt"):
        tracker.update(startedAt=now_iso(), phase="Pending")
        tracker.set_condition("Succeeded", None, "Pending", "rebuild not finished yet")
    run_id = f"operator-rebuild-{request.rebuild_id}"
    recorder: runs.RunRecorder | None = None
    try:
        pool = await clients.pool()
        await runs.record_start(
            pool, run_id, "rebuild", request.projection, source or runs.RunSource("operator")
        )
        recorder = runs.RunRecorder(pool, run_id)
        report = recorder.rebuild_progress(on_progress(tracker, notify))
        engine = Rebuild(await clients.store(), pool, request, report)
        async with recorder.writing():
            result = await _until_stopped(engine.run(), stopped)
    except asyncio.CancelledError:
        await runs.record_interrupted(recorder, run_id)
        raise
    except Exception as exc:
        failure = classify(exc)
        failed(tracker, failure)
        notify(failure.reason, failure.message, True)
        await runs.record_failed(
            recorder, run_id, failure.message, retrying=failure.transient, phase=tracker.phase
        )
        return failure if failure.transient else None
    if result is None:  # stopped: deleted or operator exiting
        tracker.update(phase="Cancelled", message="cancelled; the shadow schema was dropped")
        tracker.set_condition("Running", False, "Cancelled")
        notify("Cancelled", "rebuild cancelled, shadow schema dropped", True)
        await runs.record_finish(recorder.pool, run_id, "cancelled", message=tracker.get("message"))
        return None
    succeeded(tracker, result)
    notify("Succeeded", tracker.get("message") or "", False)
    await runs.record_finish(
        recorder.pool, run_id, "succeeded", progress=recorder.latest[1], message=tracker.get("message")
    )
    return None


async def _until_stopped[T](work: Awaitable[T], stopped: Awaitable[Any]) -> T | None:
    """``await work`` unless ``stopped`` completes first; then ``work`` is cancelled (and awaited, so
    its clean-up has run) and ``None`` returned. Cancelling the caller cancels ``work`` as well."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopped)
    try:
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result() if not task.cancelled() else None


async def cleanup(uid: str, clients: Clients) -> None:
    """On deletion: drop the object's shadow schema if a run left one (idempotent)."""
    request = RebuildRequest(live_schema=clients.settings.readmodel_schema, rebuild_id=rebuild_id(uid))
    await drop_schema(await clients.pool(), request.shadow_schema)
