"""Backup objects → backup engine runs (``app.backup``), once or on a cron ``schedule``, into the
operator's backup volume (``EDA_BACKUP_DIR``, a PersistentVolumeClaim in the chart).

Each run writes ``<EDA_BACKUP_DIR>/<directory>/<UTC time>/`` (``directory`` defaults to
``<namespace>-<name>``), verifies it (``verify``), then keeps the newest ``retain`` complete backups
of that directory. ``.status`` shows the run's progress (part, bytes, parts done), the last backup's
manifest summary (cut, events, bytes, streams, rows), the backups kept, and — when a mirror is
configured (``EDA_MIRROR_URL``) — the mirror's lag with condition ``MirrorInSync``. A run is a
``reconcile Backup <namespace>/<name>`` span over the engine's ``backup`` span, and counted in
``eda_operator_reconciles_total{kind="Backup"}`` (``operator/observe.py``). Kubernetes Events:
``BackupCompleted``, ``BackupsPruned``, ``BackupFailed``, ``MirrorLagging``. Deleting the object stops
its schedule; the backups on the volume stay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from croniter import croniter

from app.backup import mirror as mirrors
from app.backup import retention
from app.backup.manifest import Manifest, MirrorCheck
from app.backup.plan import PLAN
from app.backup.take import BackupRequest, take_backup
from app.backup.verify import verify
from app.readmodel.runs import RunSource
from eda_operator import observe
from eda_operator.clients import Clients
from eda_operator.conditions import StatusTracker, now_iso
from eda_operator.errors import INVALID_SPEC, InvalidSpec, classify
from eda_operator.snapshots import due_at, invalid, iso, next_run

Notify = Callable[[str, str, bool], None]
RETRY_S = 5.0
DEFAULT_RETAIN = 7


@dataclass(frozen=True, slots=True)
class BackupSpec:
    directory: str
    schedule: str | None
    retain: int
    verify: bool
    max_mirror_lag_s: float | None


def parse_spec(spec: Mapping[str, Any], namespace: str, name: str) -> BackupSpec:
    """The spec, checked (``InvalidSpec``: never retried)."""
    schedule = spec.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not croniter.is_valid(schedule)):
        raise InvalidSpec(f"spec.schedule is not a valid cron expression: {schedule!r}")
    retain = spec.get("retain", DEFAULT_RETAIN)
    if isinstance(retain, bool) or not isinstance(retain, int) or retain < 1:
        raise InvalidSpec(f"spec.retain must be an integer >= 1, got {retain!r}")
    directory = spec.get("directory") or f"{namespace}-{name}"
    if not isinstance(directory, str) or "/" in directory or directory.startswith("."):
        raise InvalidSpec(f"spec.directory must be a plain directory name, got {directory!r}")
    lag = spec.get("maxMirrorLagSeconds")
    if lag is not None and (isinstance(lag, bool) or not isinstance(lag, int | float) or lag < 0):
        raise InvalidSpec(f"spec.maxMirrorLagSeconds must be a number >= 0, got {lag!r}")
    verify_after = spec.get("verify", True)
    return BackupSpec(
        directory, schedule, retain, bool(verify_after), float(lag) if lag is not None else None
    )


class StatusProgress:
    """The engine's progress as ``.status.progress`` (published by the status timer)."""

    def __init__(self, tracker: StatusTracker) -> None:
        self._tracker = tracker
        self._done = 0
        self._part = ""
        self._bytes = 0

    def begin(self, part: str, total_bytes: int | None) -> None:
        self._part, self._bytes = part, 0
        self._publish()

    def advance(self, nbytes: int) -> None:
        self._bytes += nbytes
        self._publish()

    def end(self, summary: str) -> None:
        self._done += 1
        self._publish()

    def _publish(self) -> None:
        total = len(PLAN)
        self._tracker.update(
            progress={
                "part": self._part,
                "partBytes": self._bytes,
                "partsDone": self._done,
                "partsTotal": total,
                "percent": min(100, self._done * 100 // total),
            }
        )


def summary(manifest: Manifest, target: Path, verified: bool) -> dict[str, Any]:
    """The manifest as ``.status.lastBackup``."""
    tables = {t.name: t.rows for t in manifest.postgres.tables} if manifest.postgres else {}
    return {
        "name": target.name,
        "path": str(target),
        "cutSequence": manifest.cut_sequence,
        "cutTime": manifest.cut_time,
        "events": manifest.events,
        "bytes": manifest.stored_bytes,
        "streams": {s.name: s.messages for s in manifest.streams},
        "rows": tables,
        "startedAt": iso(manifest.created_at),
        "finishedAt": iso(manifest.finished_at),
        "seconds": round((manifest.finished_at - manifest.created_at).total_seconds(), 3),
        "verified": verified,
    }


def _mirror_status(tracker: StatusTracker, check: MirrorCheck, limit: float | None, notify: Notify) -> None:
    tracker.update(
        mirror={
            "stream": check.stream,
            "lagMessages": check.lag_messages,
            "lagSeconds": check.lag_seconds,
            "checkedAt": now_iso(),
        }
    )
    try:
        mirrors.check(check, limit)
    except mirrors.MirrorError as exc:
        tracker.set_condition("MirrorInSync", False, "MirrorLagging", str(exc))
        notify("MirrorLagging", str(exc), True)
        return
    tracker.set_condition("MirrorInSync", True, "WithinLimit", f"{check.lag_messages} events behind")


async def _probe(clients: Clients) -> Callable[[], Awaitable[MirrorCheck]] | None:
    mnc = await clients.mirror()
    if mnc is None:
        return None
    nc = await clients.nats()

    async def probe() -> MirrorCheck:
        return await mirrors.lag(nc, mnc, clients.settings.mirror_stream)

    return probe


async def _take(spec: BackupSpec, tracker: StatusTracker, clients: Clients) -> tuple[Manifest, Path, bool]:
    root = Path(clients.settings.backup_dir) / spec.directory
    target = retention.new_backup_dir(root)
    request = BackupRequest(target, mirror=await _probe(clients))
    nc, pool = await clients.nats(), await clients.pool()
    async with pool.acquire() as conn:
        manifest = await take_backup(nc, conn, request, StatusProgress(tracker))
    if spec.verify:
        await verify(target)
    return manifest, target, spec.verify


def report(
    tracker: StatusTracker, spec: BackupSpec, result: tuple[Manifest, Path, bool], notify: Notify
) -> None:
    manifest, target, verified = result
    kept = retention.prune(target.parent, spec.retain)
    message = (
        f"backup {target.name}: {manifest.events} events up to sequence {manifest.cut_sequence}, "
        f"{manifest.stored_bytes} bytes" + (", verified" if verified else "")
    )
    tracker.update(
        phase="Scheduled" if spec.schedule else "Succeeded",
        observedGeneration=tracker.generation,
        runs=int(tracker.get("runs") or 0) + 1,
        lastRunAt=iso(manifest.created_at),
        nextRunAt=iso(next_run(spec.schedule, datetime.now(UTC))) if spec.schedule else None,
        lastBackup=summary(manifest, target, verified),
        backups=kept.kept,
        kept=len(kept.kept),
        progress=None,
        message=message,
    )
    tracker.succeed("BackupCompleted", message)
    notify("BackupCompleted", message, False)
    if kept.removed:
        notify("BackupsPruned", f"removed {', '.join(kept.removed)}; kept {len(kept.kept)}", False)
    if manifest.mirror is not None:
        _mirror_status(tracker, manifest.mirror, spec.max_mirror_lag_s, notify)


async def run_once(
    spec: BackupSpec,
    tracker: StatusTracker,
    clients: Clients,
    notify: Notify,
    *,
    source: RunSource | None = None,
) -> bool:
    """One backup, traced and counted like every reconcile (``operator/observe.py``); ``False`` after
    a transient failure (retried after ``RETRY_S``)."""
    with observe.reconciling("Backup", source) as reconcile:
        ok = await _run_once(spec, tracker, clients, notify)
        reconcile.from_phase(tracker.phase)
        return ok


async def _run_once(spec: BackupSpec, tracker: StatusTracker, clients: Clients, notify: Notify) -> bool:
    tracker.update(phase="Running", message=None)
    tracker.set_condition("Running", True, "BackingUp")
    try:
        result = await _take(spec, tracker, clients)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = classify(exc)
        tracker.update(
            phase="Pending" if failure.transient else "Failed", message=failure.message, progress=None
        )
        tracker.set_condition("Running", False, failure.reason, failure.message)
        tracker.set_condition("Failed", not failure.transient, failure.reason, failure.message)
        if not failure.transient:
            tracker.update(observedGeneration=tracker.generation)
        notify("BackupFailed", failure.message, True)
        return not failure.transient
    report(tracker, spec, result, notify)
    return True


async def tick(  # noqa: PLR0917 - the daemon's state, passed on
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    tracker: StatusTracker,
    clients: Clients,
    notify: Notify,
    source: RunSource | None = None,
) -> float:
    """One iteration of the daemon loop; returns how long to sleep before the next one."""
    try:
        parsed = parse_spec(spec, str(meta.get("namespace") or "default"), str(meta.get("name")))
    except ValueError as exc:
        invalid(tracker, exc, notify)
        return 1.0
    due = due_at(tracker, parsed.schedule)
    if due is None:
        return 1.0
    wait = (due - datetime.now(UTC)).total_seconds()
    if wait > 0:
        if parsed.schedule and tracker.get("nextRunAt") is None:
            tracker.update(nextRunAt=iso(due))
        return min(wait, 1.0)
    if not tracker.get("startedAt"):
        tracker.update(startedAt=now_iso())
    ok = await run_once(parsed, tracker, clients, notify, source=source)
    return 0.0 if ok else RETRY_S


__all__ = ["INVALID_SPEC", "BackupSpec", "parse_spec", "run_once", "tick"]
