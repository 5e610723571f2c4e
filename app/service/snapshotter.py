"""The snapshot engine behind ``eda snapshot`` and the ``Snapshot`` custom resource.

Snapshots aggregates of one type: all of them, a list of ids, or only those with at least
``min_events`` events since their last snapshot. Aggregates are enumerated from the ``EVENTS`` stream's
per-subject message counts (``STREAM.INFO`` with ``subjects_filter``, paged), so choosing candidates
costs no replay: an aggregate's version is its subject's message count.

Retention: the KV bucket ``snapshots`` keeps a per-key history (a bucket-wide limit, 8 by default);
``retain=K`` purges all but the newest K revisions of each key written (``STREAM.PURGE`` with
``filter`` + ``keep``). K above the bucket's history is capped by the bucket (reported as
``retained_cap``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from app.domain.registry import decider_for
from app.eventstore import jsapi
from app.eventstore.envelope import SUBJECT_PREFIX, StreamId
from app.eventstore.jetstream import STREAM
from app.eventstore.ports import EventStore, EventStoreError
from app.eventstore.snapshots import BUCKET, SnapshotStore
from app.service.repository import Repository
from app.telemetry import tracer

KV_STREAM = f"KV_{BUCKET}"


class InvalidSnapshotRequest(ValueError):
    """The request can never succeed (unknown aggregate type, bad id, bad numbers)."""


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """What to snapshot. ``ids=None`` means every aggregate of the type."""

    aggregate_type: str
    ids: tuple[str, ...] | None = None
    min_events: int | None = None
    retain: int | None = None
    concurrency: int = 16

    def validate(self) -> None:
        """Raise ``InvalidSnapshotRequest`` for a request that can never succeed."""
        try:
            decider_for(self.aggregate_type)
        except KeyError:
            raise InvalidSnapshotRequest(f"unknown aggregate type {self.aggregate_type!r}") from None
        for agg_id in self.ids or ():
            try:
                StreamId(self.aggregate_type, agg_id)
            except ValueError as exc:
                raise InvalidSnapshotRequest(str(exc)) from None
        if self.min_events is not None and self.min_events < 1:
            raise InvalidSnapshotRequest("minEventsSinceSnapshot must be >= 1")
        if self.retain is not None and self.retain < 1:
            raise InvalidSnapshotRequest("retain must be >= 1")


@dataclass(slots=True)
class SnapshotResult:
    """Counts of one run."""

    scanned: int = 0
    written: int = 0
    skipped: int = 0
    missing: list[str] = field(default_factory=list)
    pruned_keys: int = 0
    retained_cap: int | None = None


Progress = Callable[[SnapshotResult, int], None]


async def subject_counts(nc: NATS, subjects_filter: str, *, timeout: float = 5.0) -> dict[str, int]:
    """Messages per subject of ``EVENTS`` matching ``subjects_filter`` (all pages)."""
    counts: dict[str, int] = {}
    offset = 0
    while True:
        request = jsapi.stream_info_request(subjects_filter, offset)
        msg = await nc.request(jsapi.stream_info_subject(STREAM), request, timeout=timeout)
        info: dict[str, Any] = orjson.loads(msg.data)
        if "error" in info:
            raise EventStoreError(f"stream info failed: {info['error'].get('description')}")
        page: dict[str, int] = info.get("state", {}).get("subjects") or {}
        counts.update(page)
        total = int(info.get("total", 0))
        offset += len(page)
        if not page or offset >= total:
            return counts


async def _bucket_history(nc: NATS) -> int:
    info = await nc.jetstream().stream_info(KV_STREAM)
    return int(info.config.max_msgs_per_subject or 1)


class Snapshotter:
    """Takes snapshots through the aggregate's ``Repository`` (load = snapshot + later events)."""

    def __init__(self, nc: NATS, store: EventStore, snapshots: SnapshotStore) -> None:
        self._nc = nc
        self._store = store
        self._snapshots = snapshots

    async def run(self, request: SnapshotRequest, progress: Progress | None = None) -> SnapshotResult:
        """Snapshot what ``request`` selects; ``progress(result_so_far, candidates)`` after each one.
        One ``snapshot <aggregate type>`` span around the run (a child of the caller's: the operator's
        reconcile, the CLI's command)."""
        request.validate()
        name = f"snapshot {request.aggregate_type}"
        with tracer().start_as_current_span(
            name, attributes={"eda.aggregate.type": request.aggregate_type}
        ) as span:
            result = await self._run(request, progress)
            span.set_attribute("eda.snapshot.scanned", result.scanned)
            span.set_attribute("eda.snapshot.written", result.written)
            return result

    async def _run(self, request: SnapshotRequest, progress: Progress | None) -> SnapshotResult:
        decider = decider_for(request.aggregate_type)
        repo: Repository[Any, Any, Any] = Repository(self._store, decider, self._snapshots)
        prefix = f"{SUBJECT_PREFIX}.{request.aggregate_type}."
        counts = {
            subject.removeprefix(prefix): n
            for subject, n in (await subject_counts(self._nc, f"{prefix}*")).items()
        }
        result = SnapshotResult()
        if request.ids is not None:
            result.missing = [i for i in request.ids if i not in counts]
            counts = {i: counts[i] for i in request.ids if i in counts}
        if request.retain is not None:
            cap = await _bucket_history(self._nc)
            result.retained_cap = cap if request.retain > cap else None
        gate = asyncio.Semaphore(request.concurrency)
        candidates = len(counts)

        async def one(agg_id: str, events: int) -> None:
            async with gate:
                stream = StreamId(request.aggregate_type, agg_id)
                snap = await self._snapshots.get(stream, decider.state_types, decider.snapshot_schema)
                covered = snap.position.version if snap is not None else 0
                due = events - covered
                wanted = request.min_events if request.min_events is not None else 1
                if due < wanted:
                    result.skipped += 1
                else:
                    await repo.snapshot(agg_id)
                    result.written += 1
                if request.retain is not None:
                    await self._prune(stream, request.retain)
                    result.pruned_keys += 1
                result.scanned += 1
                if progress is not None:
                    progress(result, candidates)

        await _gather(one(agg_id, n) for agg_id, n in counts.items())
        return result

    async def _prune(self, stream: StreamId, keep: int) -> None:
        """Keep only the newest ``keep`` snapshots of ``stream``."""
        await self._nc.jetstream().purge_stream(KV_STREAM, subject=f"$KV.{BUCKET}.{stream}", keep=keep)


async def _gather(coros: Iterable[Any]) -> None:
    """Run all; on the first failure cancel the rest and raise it (unwrapped, for error mapping)."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from group_error
