"""The event codec: domain event ⇄ JSON envelope (msgspec, fast), with upcasting on read.

Wire names (``TYPE``) and ``VERSION`` come from the event classes; a class never changes its ``TYPE``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import msgspec

from app.eventstore.envelope import (
    Envelope,
    Metadata,
    NewEvent,
    RawMessage,
    RecordedEvent,
    StreamId,
    utcnow,
)
from app.eventstore.upcasting import UpcasterRegistry, default_upcasters


def message_headers(new: NewEvent, meta: Metadata) -> dict[str, str]:
    """The headers stored with an event: its id (``Nats-Msg-Id``, the dedupe key), its wire type (so
    consumers can skip what they do not handle without decoding) and the W3C trace context."""
    headers = {"Nats-Msg-Id": new.event_id, "Eda-Type": type(new.event).TYPE}
    if meta.traceparent:
        headers["traceparent"] = meta.traceparent
    if meta.tracestate:
        headers["tracestate"] = meta.tracestate
    return headers


class UnknownEventType(LookupError):
    """A stored event whose ``type`` this codec has no class for."""


class EventCodec:
    """Knows every event class by wire name; encodes envelopes and decodes (upcasting) them."""

    def __init__(self, event_types: Iterable[type[Any]], upcasters: UpcasterRegistry | None = None) -> None:
        self._types: dict[str, type[Any]] = {}
        for cls in event_types:
            name = cls.TYPE
            if name in self._types and self._types[name] is not cls:
                raise ValueError(f"two event classes share the wire name {name!r}")
            self._types[name] = cls
        self._upcasters = upcasters or default_upcasters()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(type=Envelope)

    def knows(self, event_type: str) -> bool:
        return event_type in self._types

    def event_class(self, event_type: str) -> type[Any]:
        try:
            return self._types[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def envelope(self, stream: StreamId, version: int, new: NewEvent, meta: Metadata) -> Envelope:
        """Wrap a new event at aggregate ``version``; ``occurred_at`` is the event's ``at`` if it has one."""
        event = new.event
        return Envelope(
            event_id=new.event_id,
            type=type(event).TYPE,
            schema_version=type(event).VERSION,
            aggregate_type=stream.aggregate_type,
            aggregate_id=stream.aggregate_id,
            aggregate_version=version,
            occurred_at=getattr(event, "at", None) or utcnow(),
            correlation_id=meta.correlation_id,
            causation_id=meta.causation_id,
            traceparent=meta.traceparent,
            tracestate=meta.tracestate,
            data=msgspec.to_builtins(event),
        )

    def encode(self, envelope: Envelope) -> bytes:
        return self._encoder.encode(envelope)

    def decode_envelope(self, payload: bytes) -> Envelope:
        """Parse a stored envelope and upcast its ``data`` to the current schema of its type."""
        env = self._decoder.decode(payload)
        cls = self._types.get(env.type)
        if cls is not None and env.schema_version < cls.VERSION:
            data = self._upcasters.upcast(env.type, env.schema_version, env.data, cls.VERSION)
            env = dataclasses.replace(env, data=data, schema_version=cls.VERSION)
        return env

    def decode(self, payload: bytes, sequence: int) -> RecordedEvent:
        """A stored message → ``RecordedEvent`` (``event`` is ``None`` for unknown types)."""
        env = self.decode_envelope(payload)
        cls = self._types.get(env.type)
        event = msgspec.convert(env.data, cls) if cls is not None else None
        return RecordedEvent(envelope=env, sequence=sequence, event=event)

    def decode_all(self, messages: Iterable[RawMessage]) -> list[RecordedEvent]:
        """Stored messages → ``RecordedEvent`` s, in their order."""
        return [self.decode(m.data, m.sequence) for m in messages]

    def to_event(self, envelope: Envelope) -> Any:
        """Decode the domain event of an (already upcast) envelope."""
        return msgspec.convert(envelope.data, self.event_class(envelope.type))
