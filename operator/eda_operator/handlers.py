"""The kopf handlers, registered on a given registry by ``register(registry)`` (a private one in tests,
kopf's default one for ``kopf run -m eda_operator.default``). Handlers stay thin: they find the per-object
``StatusTracker``, call one function of ``rebuilds``/``snapshots``/``backups``, and map its outcome to
kopf.

- Per object, a **daemon** runs the engine; a **timer** publishes the tracker into ``.status`` at most
  once per ``status_interval``; ``on.delete`` drops a left-over shadow schema (the finalizer keeps the
  object until the daemon has stopped, i.e. the running rebuild is cancelled and its shadow dropped).
- ``on.startup`` puts the ``Clients`` into the operator ``memo`` (settings from ``memo.settings`` or the
  environment), ``on.cleanup`` closes them; ``on.probe`` adds NATS status to the liveness endpoint.
"""

from __future__ import annotations

from typing import Any

import kopf

from app.readmodel.runs import RunSource
from app.settings import Settings
from eda_operator import backups, rebuilds, snapshots
from eda_operator.clients import Clients
from eda_operator.conditions import StatusTracker

GROUP, VERSION = "eda.dev", "v1alpha1"
PRB = (GROUP, VERSION, "projectionrebuilds")
SNAP = (GROUP, VERSION, "snapshots")
BACKUP = (GROUP, VERSION, "backups")
RETRY_S = 5.0
FINALIZER = "eda.dev/operator"


def _tracker(memo: Any, meta: Any, status: Any) -> StatusTracker:
    generation = int(meta.get("generation") or 1)
    tracker: StatusTracker | None = memo.get("tracker")
    if tracker is None:
        tracker = StatusTracker(generation, dict(status or {}))
        memo["tracker"] = tracker
    tracker.generation = generation
    return tracker


def _notifier(body: Any) -> rebuilds.Notify:
    def notify(reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(body, reason=reason, message=message[:1000])

    return notify


def _source(meta: Any) -> RunSource:
    """How a run of this object is recorded in ``eda.maintenance_runs``."""
    return RunSource("operator", meta.get("namespace"), meta.get("name"))


def _flush(tracker: StatusTracker, patch: Any) -> None:
    for key, value in tracker.take().items():
        patch.status[key] = value


def register(registry: kopf.OperatorRegistry, *, status_interval: float = 1.0) -> kopf.OperatorRegistry:
    """Register every handler of the operator on ``registry``; returns it."""

    @kopf.on.startup(registry=registry)
    async def startup(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.posting.level = 20  # INFO and above become Kubernetes Events
        memo.clients = Clients(memo.get("settings") or Settings())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        await memo.clients.close()

    @kopf.on.probe(id="nats", registry=registry)
    def nats_probe(memo: Any, **_: Any) -> bool:
        return bool(memo.clients.nats_connected)

    @kopf.daemon(*PRB, registry=registry, cancellation_timeout=60.0)
    async def rebuild(
        *,
        spec: Any,
        status: Any,
        meta: Any,
        uid: str,
        memo: Any,
        stopped: Any,
        body: Any,
        patch: Any,
        **_: Any,
    ) -> None:
        tracker = _tracker(memo, meta, status)
        failure = await rebuilds.run_rebuild(
            spec=spec,
            uid=uid,
            tracker=tracker,
            clients=memo.clients,
            stopped=stopped.wait(),
            notify=_notifier(body),
            source=_source(meta),
        )
        _flush(tracker, patch)
        if failure is not None:
            raise kopf.TemporaryError(failure.message, delay=RETRY_S)

    @kopf.on.delete(*PRB, registry=registry, retries=20, backoff=3.0)
    async def rebuild_deleted(uid: str, memo: Any, **_: Any) -> None:
        try:
            await rebuilds.cleanup(uid, memo.clients)
        except ConnectionError as exc:
            raise kopf.TemporaryError(str(exc), delay=RETRY_S) from exc

    @kopf.daemon(*SNAP, registry=registry, cancellation_timeout=30.0)
    async def snapshot(body: Any, memo: Any, stopped: Any, patch: Any, **_: Any) -> None:
        notify = _notifier(body)
        while not stopped:
            tracker = _tracker(memo, body.meta, body.status)
            delay = await snapshots.tick(body.spec, tracker, memo.clients, notify, _source(body.meta))
            if delay > 0:
                await stopped.wait(delay)
        _flush(_tracker(memo, body.meta, body.status), patch)

    @kopf.daemon(*BACKUP, registry=registry, cancellation_timeout=60.0)
    async def backup(body: Any, memo: Any, stopped: Any, patch: Any, **_: Any) -> None:
        notify = _notifier(body)
        while not stopped:
            tracker = _tracker(memo, body.meta, body.status)
            delay = await backups.tick(body.spec, body.meta, tracker, memo.clients, notify)
            if delay > 0:
                await stopped.wait(delay)
        _flush(_tracker(memo, body.meta, body.status), patch)

    @kopf.timer(*PRB, registry=registry, interval=status_interval)
    @kopf.timer(*SNAP, registry=registry, interval=status_interval)
    @kopf.timer(*BACKUP, registry=registry, interval=status_interval)
    def publish_status(memo: Any, patch: Any, **_: Any) -> None:
        tracker: StatusTracker | None = memo.get("tracker")
        if tracker is not None and tracker.dirty:
            _flush(tracker, patch)

    return registry
