"""What every worker shares: its durable consumer on ``COMMANDS`` and the message handling around its
``WorkerHandler``.

A worker is a ``WorkerHandler``: ``await handler(command, meta)`` appends its events through a
``CommandHandler`` (deterministic ids from the command id, so a redelivery appends nothing new) and
returns; the message is acked only after that. A message that is not one of the worker's commands is
terminated (``PermanentError``). One durable consumer per worker type (``worker-<name>``) is shared
by all replicas: the work queue hands each command to one of them. Commands of one order run in
order within a replica; across replicas the aggregates' optimistic concurrency serialises them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.domain.common import Decider, DomainError
from app.eventstore.consumer import KeyedLocks, PermanentError, PullLoop
from app.eventstore.envelope import Metadata, utcnow
from app.eventstore.ports import EventStore
from app.eventstore.required import require_consumer
from app.eventstore.snapshots import SnapshotStore
from app.service.handler import CommandHandler
from app.settings import Settings
from app.workers.commands import (
    COMMANDS_STREAM,
    WorkerCommand,
    WorkerName,
    decode_command,
    kind_of,
    meta_from_headers,
)
from app.workers.observe import WorkerTelemetry

WorkerHandler = Callable[[WorkerCommand, Metadata], Awaitable[None]]
BuildHandler = Callable[[EventStore, SnapshotStore | None, Settings], WorkerHandler]


def refused(worker: WorkerName, cmd: WorkerCommand) -> PermanentError:
    """A command of another worker: terminated, never retried."""
    return PermanentError(f"the {worker} worker cannot {kind_of(cmd)!r}")


def aggregate_worker[C](
    store: EventStore,
    decider: Decider[C, Any, Any],
    translate: Callable[[WorkerCommand, datetime], C],
    opening: type[WorkerCommand],
) -> WorkerHandler:
    """A worker whose commands each change one aggregate of the order (payment, shipping): the worker
    command, translated, runs through a ``CommandHandler`` with ids derived from the command id; the
    ``opening`` command (a charge, a shipment) is decided without a read (``assume_new``)."""
    handler = CommandHandler(store, decider)

    async def handle(cmd: WorkerCommand, meta: Metadata) -> None:
        command = translate(cmd, utcnow())
        opens = isinstance(cmd, opening)
        await handler.execute(cmd.order_id, command, meta, cause=cmd.command_id, assume_new=opens)

    return handle


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


CommandRun = Callable[[Msg, WorkerCommand, Metadata], Awaitable[None]]


def command_runner(name: WorkerName, handler: WorkerHandler) -> CommandRun:
    """Run one command, whatever message brought it (a command on ``COMMANDS``, or an event the worker
    acts on): a ``process`` span, child of the message's producer (``meta``'s trace context), and the
    worker's metrics around ``handler``; a refusal of the domain is terminated (``PermanentError``)."""
    telemetry = WorkerTelemetry()

    async def run(msg: Msg, cmd: WorkerCommand, meta: Metadata) -> None:
        with telemetry.handling(msg, cmd, name, meta):
            try:
                await handler(cmd, meta)
            except DomainError as exc:
                raise PermanentError(f"{kind_of(cmd)} {cmd.command_id}: {exc.message}") from exc

    return run


def make_message_handler(name: WorkerName, handler: WorkerHandler) -> Callable[[Msg], Awaitable[None]]:
    run = command_runner(name, handler)

    async def on_message(msg: Msg) -> None:
        try:
            cmd = decode_command(msg.data, name)
        except msgspec.DecodeError as exc:
            raise PermanentError(f"not a {name} command: {exc}") from exc
        await run(msg, cmd, meta_from_headers(msg.headers, cmd.command_id))

    return on_message


def order_key(msg: Msg) -> str:
    """The order a message is about: the last token of ``cmd.<worker>.<order>`` and
    ``events.order.<order>`` alike, so a worker's loops can share one ``KeyedLocks``."""
    return msg.subject.rpartition(".")[2]


async def start_worker(
    nc: NATS, name: WorkerName, handler: WorkerHandler, settings: Settings, locks: KeyedLocks | None = None
) -> PullLoop:
    """Check ``COMMANDS`` and the worker's durable consumer exist; return its (not yet running) loop."""
    config = worker_consumer_config(name)
    assert config.durable_name is not None
    await require_consumer(nc.jetstream(), COMMANDS_STREAM, config.durable_name)
    return PullLoop(
        nc=nc,
        stream=COMMANDS_STREAM,
        durable=config.durable_name,
        handler=make_message_handler(name, handler),
        concurrency=settings.worker_concurrency,
        key=order_key,
        name=f"worker-{name}",
        locks=locks,
    )
