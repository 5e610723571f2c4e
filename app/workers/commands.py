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


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """What the saga asks a worker to do: one step's command (``command_id`` dedupes it), tagged on
    the wire by ``kind``."""

    command_id: str
    order_id: int


class Reserve(_Command, frozen=True, kw_only=True, tag="reserve"):
    items: tuple[Item, ...] = ()


class Release(_Command, frozen=True, kw_only=True, tag="release"):
    items: tuple[Item, ...] = ()  # empty in commands sent before they carried the order's items


class Commit(_Command, frozen=True, kw_only=True, tag="commit"):
    items: tuple[Item, ...] = ()


class Charge(_Command, frozen=True, kw_only=True, tag="charge"):
    amount: str


class Refund(_Command, frozen=True, kw_only=True, tag="refund"):
    pass


class Ship(_Command, frozen=True, kw_only=True, tag="ship"):
    user_id: int


class Recall(_Command, frozen=True, kw_only=True, tag="recall"):
    pass


InventoryCommand = Reserve | Release | Commit
PaymentCommand = Charge | Refund
ShippingCommand = Ship | Recall
WorkerCommand = InventoryCommand | PaymentCommand | ShippingCommand
"""The closed union of worker commands. Wire format (JSON): ``{"kind": ..., "command_id", "order_id"}``
plus the kind's own fields. Commands queued by earlier versions carried every field on every kind
(``user_id``, ``amount``, ``items``); decoding ignores the fields a kind does not have, so they still
work, and a worker of an earlier version finds in a new command every field its kind needs."""

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[WorkerName, msgspec.json.Decoder[WorkerCommand]] = {
    "inventory": msgspec.json.Decoder(type=InventoryCommand),
    "payment": msgspec.json.Decoder(type=PaymentCommand),
    "shipping": msgspec.json.Decoder(type=ShippingCommand),
}


def kind_of(cmd: WorkerCommand) -> str:
    """The command's wire tag (``reserve``, ``charge``, ...), for logs, spans and metrics."""
    return str(type(cmd).__struct_config__.tag)


def encode_command(cmd: WorkerCommand) -> bytes:
    return _ENCODER.encode(cmd)


def decode_command(data: bytes, worker: WorkerName) -> WorkerCommand:
    """A command for ``worker``; ``msgspec.DecodeError`` for anything else (undecodable, or a kind
    this worker does not handle)."""
    return _DECODERS[worker].decode(data)


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
    attrs = {"eda.command.kind": kind_of(cmd)}
    with producer_span(subject, message_id=cmd.command_id, order_id=cmd.order_id, attributes=attrs):
        await js.publish(subject, encode_command(cmd), headers=meta_headers(meta, cmd.command_id))
