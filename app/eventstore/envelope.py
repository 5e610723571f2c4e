"""What is stored and read: stream identity, positions, the event envelope and recorded events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NewType

import uuid_utils

EventId = NewType("EventId", str)
CorrelationId = NewType("CorrelationId", str)

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
SUBJECT_PREFIX = "events"


def new_event_id() -> EventId:
    """A UUIDv7: time-ordered, so ids sort by creation and index well."""
    return EventId(str(uuid_utils.uuid7()))


@dataclass(frozen=True, slots=True)
class StreamId:
    """One aggregate's stream: subject ``events.<aggregate_type>.<aggregate_id>``."""

    aggregate_type: str
    aggregate_id: str

    def __post_init__(self) -> None:
        for part in (self.aggregate_type, self.aggregate_id):
            if not _TOKEN.match(part):
                raise ValueError(f"invalid stream id part {part!r}: letters, digits, '-' and '_' only")

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.aggregate_type}.{self.aggregate_id}"

    @classmethod
    def from_subject(cls, subject: str) -> StreamId:
        _, aggregate_type, aggregate_id = subject.split(".", 2)
        return cls(aggregate_type, aggregate_id)

    def __str__(self) -> str:
        return f"{self.aggregate_type}.{self.aggregate_id}"


@dataclass(frozen=True, slots=True)
class Position:
    """Where an aggregate's stream stands: its version (event count) and last stream sequence."""

    version: int
    sequence: int


NEW = Position(version=0, sequence=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Metadata:
    """Causal and tracing context carried by every event of one command."""

    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """A domain event about to be appended, with the id that makes its append idempotent."""

    event: Any
    event_id: EventId = field(default_factory=new_event_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The stored JSON document of one event (``data`` is the event's own fields)."""

    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    data: dict[str, Any]
    tracestate: str | None = None


def caused_by(envelope: Envelope) -> Metadata:
    """The metadata of what an event causes: the same correlation id and trace context (one trace per
    saga), caused by the event itself."""
    return Metadata(
        correlation_id=envelope.correlation_id,
        causation_id=envelope.event_id,
        traceparent=envelope.traceparent,
        tracestate=envelope.tracestate,
    )


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A stored message, undecoded: its stream sequence, subject, JSON envelope and headers."""

    sequence: int
    subject: str
    data: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    """An event as read back: envelope (upcast to the current schema), stream sequence and the decoded
    domain event (``None`` if this process does not know the type)."""

    envelope: Envelope
    sequence: int
    event: Any

    @property
    def stream_id(self) -> StreamId:
        return StreamId(self.envelope.aggregate_type, self.envelope.aggregate_id)

    @property
    def version(self) -> int:
        return self.envelope.aggregate_version


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)
