"""The wire contract between the saga orchestrator and the workers.

Owns the work-queue stream ``COMMANDS`` with subjects ``cmd.<worker>.<order_id>``, the command
document, its headers (``Nats-Msg-Id`` = command id, correlation/causation ids, W3C trace context) and
publishing a command. The saga imports this module to send commands; the workers import it to read
them; no worker imports the saga.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from app.eventstore.envelope import Metadata
from app.telemetry import inject_headers, producer_span

COMMANDS_STREAM = "COMMANDS"
WorkerName = Literal["inventory", "payment", "shipping"]
WORKERS: tuple[WorkerName, ...] = ("inventory", "payment", "shipping")


def commands_stream_config(replicas: int) -> StreamConfig:
    """Work queue: each command is removed once a worker acks it; 2 min dedupe on the command id."""
    return StreamConfig(
        name=COMMANDS_STREAM,
        subjects=["cmd.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.WORK_QUEUE,
        discard=DiscardPolicy.OLD,
        max_age=7 * 86400.0,
        num_replicas=replicas,
        duplicate_window=120.0,
    )


class Item(msgspec.Struct, frozen=True):
    product_id: int
    quantity: int


class WorkerCommand(msgspec.Struct, frozen=True, kw_only=True):
    """What the saga asks a worker to do. ``kind``: reserve|release|commit, charge|refund, ship|recall."""

    command_id: str
    kind: str
    order_id: int
    user_id: int = 0
    amount: str = "0"
    items: tuple[Item, ...] = ()


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(type=WorkerCommand)


def decode_command(data: bytes) -> WorkerCommand:
    return _DECODER.decode(data)


def meta_headers(meta: Metadata, msg_id: str) -> dict[str, str]:
    headers = {"Nats-Msg-Id": msg_id, "Eda-Correlation-Id": meta.correlation_id}
    if meta.causation_id:
        headers["Eda-Causation-Id"] = meta.causation_id
    if meta.traceparent:
        headers["traceparent"] = meta.traceparent
    if meta.tracestate:
        headers["tracestate"] = meta.tracestate
    return inject_headers(headers)  # the current span (a saga step) is the parent, when there is one


def meta_from_headers(headers: dict[str, str] | None, causation_id: str) -> Metadata:
    """The metadata a worker puts on its events: the saga's correlation id, caused by the command."""
    h = headers or {}
    return Metadata(
        correlation_id=h.get("Eda-Correlation-Id", causation_id),
        causation_id=causation_id,
        traceparent=h.get("traceparent"),
        tracestate=h.get("tracestate"),
    )


async def publish_command(
    js: JetStreamContext, worker: WorkerName, cmd: WorkerCommand, meta: Metadata
) -> None:
    """Publish once per command id (server-side dedupe; the worker is idempotent beyond the window).
    A ``send cmd.<worker>.{id}`` PRODUCER span; the worker's span is its child."""
    subject = f"cmd.{worker}.{cmd.order_id}"
    attrs = {"eda.command.kind": cmd.kind}
    with producer_span(subject, message_id=cmd.command_id, order_id=cmd.order_id, attributes=attrs):
        await js.publish(subject, _ENCODER.encode(cmd), headers=meta_headers(meta, cmd.command_id))
