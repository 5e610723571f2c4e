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

from collections.abc import Awaitable, Callable
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


def _clients(memo: kopf.Memo) -> Clients:
    clients: Clients = memo.clients
    return clients


def _tracker(memo: kopf.Memo, meta: kopf.Meta, status: kopf.Status) -> StatusTracker:
    generation = int(meta.get("generation") or 1)
    tracker: StatusTracker | None = memo.get("tracker")
    if tracker is None:
        tracker = StatusTracker(generation, dict(status or {}))
        memo["tracker"] = tracker
    tracker.generation = generation
    return tracker


def _notifier(body: kopf.Body) -> rebuilds.Notify:
    def notify(reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(body, reason=reason, message=message[:1000])

    return notify


def _source(meta: kopf.Meta) -> RunSource:
    """How a run of this object is recorded in ``eda.maintenance_runs``."""
    return RunSource("operator", meta.get("namespace"), meta.get("name"))


def _flush(tracker: StatusTracker, patch: kopf.Patch) -> None:
    for key, value in tracker.take().items():
        patch.status[key] = value


async def _ticking(
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    patch: kopf.Patch,
    tick: Callable[[StatusTracker, rebuilds.Notify], Awaitable[float]],
) -> None:
    """A scheduled object's daemon (Snapshot, Backup): ``tick`` runs what is due and says how long to
    sleep; the status is flushed when the object goes away or the operator stops."""
    notify = _notifier(body)
    while not stopped:
        delay = await tick(_tracker(memo, body.meta, body.status), notify)
        if delay > 0:
            await stopped.wait(delay)
    _flush(_tracker(memo, body.meta, body.status), patch)


def register(registry: kopf.OperatorRegistry, *, status_interval: float = 1.0) -> kopf.OperatorRegistry:
    """Register every handler of the operator on ``registry``; returns it."""

    @kopf.on.startup(registry=registry)
    async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.posting.level = 20  # INFO and above become Kubernetes Events
        memo.clients = Clients(memo.get("settings") or Settings())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await _clients(memo).close()

    @kopf.on.probe(id="nats", registry=registry)
    def nats_probe(memo: kopf.Memo, **_: Any) -> bool:
        return _clients(memo).nats_connected

    @kopf.daemon(*PRB, registry=registry, cancellation_timeout=60.0)
    async def rebuild(
        *,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        uid: str,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        tracker = _tracker(memo, meta, status)
        failure = await rebuilds.run_rebuild(
            spec=spec,
            uid=uid,
            tracker=tracker,
            clients=_clients(memo),
            stopped=stopped.wait(),
            notify=_notifier(body),
            source=_source(meta),
        )
        _flush(tracker, patch)
        if failure is not None:
            raise kopf.TemporaryError(failure.message, delay=RETRY_S)

    @kopf.on.delete(*PRB, registry=registry, retries=20, backoff=3.0)
    async def rebuild_deleted(uid: str, memo: kopf.Memo, **_: Any) -> None:
        try:
            await rebuilds.cleanup(uid, _clients(memo))
        except ConnectionError as exc:
            raise kopf.TemporaryError(str(exc), delay=RETRY_S) from exc

    @kopf.daemon(*SNAP, registry=registry, cancellation_timeout=30.0)
    async def snapshot(
        body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, patch: kopf.Patch, **_: Any
    ) -> None:
        async def tick(tracker: StatusTracker, notify: rebuilds.Notify) -> float:
            return await snapshots.tick(body.spec, tracker, _clients(memo), notify, _source(body.meta))

        await _ticking(body, memo, stopped, patch, tick)

    @kopf.daemon(*BACKUP, registry=registry, cancellation_timeout=60.0)
    async def backup(
        body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, patch: kopf.Patch, **_: Any
    ) -> None:
        async def tick(tracker: StatusTracker, notify: rebuilds.Notify) -> float:
            source = _source(body.meta)
            return await backups.tick(body.spec, body.meta, tracker, _clients(memo), notify, source)

        await _ticking(body, memo, stopped, patch, tick)

    @kopf.timer(*PRB, registry=registry, interval=status_interval)
    @kopf.timer(*SNAP, registry=registry, interval=status_interval)
    @kopf.timer(*BACKUP, registry=registry, interval=status_interval)
    def publish_status(memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        tracker: StatusTracker | None = memo.get("tracker")
        if tracker is not None and tracker.dirty:
            _flush(tracker, patch)

    return registry
