"""What every worker shares: decide-and-append with deterministic event ids, and the role's main loop
(connect, ensure streams and the durable consumer, serve health, stop cleanly on SIGTERM/SIGINT).

A worker is a ``CommandHandler``: ``await handler(command, meta)`` appends its events (or nothing, for
a command that already took effect) and returns; the message is acked only after that. One durable
consumer per worker type (``worker-<name>``) is shared by all replicas: the work queue hands each
command to one of them. Commands of one order run in order within a replica; across replicas the
aggregates' optimistic concurrency serialises them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.domain.common import Decider, DomainError
from app.eventstore.consumer import PermanentError, PullLoop, ensure_consumer
from app.eventstore.envelope import NEW, EventId, Metadata, NewEvent, StreamId
from app.eventstore.jetstream import JetStreamEventStore, ensure_stream
from app.eventstore.ports import ConcurrencyError
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Loaded, Repository
from app.settings import Settings
from app.workers.commands import (
    COMMANDS_STREAM,
    WorkerCommand,
    WorkerName,
    commands_stream_config,
    decode_command,
    meta_from_headers,
)
from app.workers.observe import WorkerTelemetry

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0b5f3c1e-7d64-4a8b-8f2e-5c9d1e2f3a4b")
CONFLICT_RETRIES = 20

CommandHandler = Callable[[WorkerCommand, Metadata], Awaitable[None]]


def event_ids(command_id: str, stream: StreamId, events: Sequence[Any]) -> list[NewEvent]:
    """Deterministic ids: the same command's events on the same stream always get the same ids."""
    return [
        NewEvent(event=e, event_id=EventId(str(uuid.uuid5(_NAMESPACE, f"{command_id}:{stream}:{i}"))))
        for i, e in enumerate(events)
    ]


async def decide_and_append[C](
    store: JetStreamEventStore,
    repo: Repository[C, Any, Any],
    aggregate_id: int,
    make: Callable[[], C],
    *,
    command_id: str,
    meta: Metadata,
    assume_new: bool = False,
) -> list[Any]:
    """Load → decide → append (deterministic ids); on a conflict reload and decide again.

    ``assume_new``: the command normally opens the aggregate (a charge, a shipment), so the first
    attempt decides on the initial state without a read; a redelivery or a compensation that got there
    first shows up as a conflict (or a no-op decision) and is decided again on the stored state."""
    assumed = assume_new
    for attempt in range(CONFLICT_RETRIES):
        loaded = Loaded(repo.decider.initial, NEW) if assumed else await repo.load(aggregate_id)
        events = list(repo.decider.decide(make(), loaded.state))
        if not events:
            if assumed:
                assumed = False
                continue
            return []
        stream = repo.stream(aggregate_id)
        try:
            await store.append(stream, event_ids(command_id, stream, events), loaded.position, meta)
            return events
        except ConcurrencyError:
            assumed = False
            await asyncio.sleep(0.005 * (attempt + 1))
    raise ConcurrencyError(repo.stream(aggregate_id), loaded.position, "too many conflicts")


def worker_consumer_config(name: WorkerName) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=f"worker-{name}",
        filter_subject=f"cmd.{name}.>",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=5.0,
        max_deliver=20,
        max_ack_pending=4096,
    )


def make_message_handler(handler: CommandHandler) -> Callable[[Msg], Awaitable[None]]:
    telemetry = WorkerTelemetry()

    async def on_message(msg: Msg) -> None:
        try:
            cmd = decode_command(msg.data)
        except msgspec.DecodeError as exc:
            raise PermanentError(f"undecodable command: {exc}") from exc
        meta = meta_from_headers(msg.headers, cmd.command_id)
        with telemetry.handling(msg, cmd):  # span (child of the saga's send) + metrics
            try:
                await handler(cmd, meta)
            except DomainError as exc:
                raise PermanentError(f"{cmd.kind} {cmd.command_id}: {exc.message}") from exc

    return on_message


def order_key(msg: Msg) -> str:
    return msg.subject


async def start_worker(nc: NATS, name: WorkerName, handler: CommandHandler, settings: Settings) -> PullLoop:
    """Ensure ``COMMANDS`` and the worker's durable consumer; return its (not yet running) loop."""
    js = nc.jetstream()
    await ensure_stream(js, commands_stream_config(settings.stream_replicas))
    config = worker_consumer_config(name)
    await ensure_consumer(js, COMMANDS_STREAM, config)
    assert config.durable_name is not None
    return PullLoop(
        nc=nc,
        stream=COMMANDS_STREAM,
        durable=config.durable_name,
        handler=make_message_handler(handler),
        concurrency=settings.worker_concurrency,
        key=order_key,
        name=f"worker-{name}",
    )


BuildHandler = Callable[[JetStreamEventStore, SnapshotStore, Settings], CommandHandler]


def decider_repo[C](
    store: JetStreamEventStore, decider: Decider[C, Any, Any], snapshots: SnapshotStore | None, every: int
) -> Repository[C, Any, Any]:
    return Repository(store, decider, snapshots, snapshot_every=every)
