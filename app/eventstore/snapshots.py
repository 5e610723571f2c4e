"""Snapshots in the JetStream KV bucket ``snapshots``, key ``<aggregate_type>.<id>``.

A snapshot holds the state, its aggregate version and stream sequence, and the snapshot schema version
of its aggregate. A snapshot of another schema version (an older build) is ignored — never misread —
and the aggregate is then loaded by full replay. History keeps the last few snapshots per key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from app.eventstore.envelope import Position, StreamId, utcnow
from app.eventstore.required import HINT, NotProvisioned

BUCKET = "snapshots"
DEFAULT_HISTORY = 8


def snapshots_bucket_config(replicas: int, history: int = DEFAULT_HISTORY) -> KeyValueConfig:
    """The bucket ``eda provision`` creates: file storage, direct reads, ``history`` revisions per key."""
    return KeyValueConfig(
        bucket=BUCKET,
        history=history,
        storage=StorageType.FILE,
        replicas=replicas,
        direct=True,
        description="aggregate snapshots (state + version + stream sequence + schema)",
    )


class _Stored(msgspec.Struct, frozen=True):
    snapshot_schema: int
    aggregate_type: str
    aggregate_id: str
    version: int
    sequence: int
    state_type: str
    state: dict[str, Any]
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A decoded snapshot: the state as of ``position``."""

    state: Any
    position: Position
    taken_at: datetime


class SnapshotStore:
    """Reads and writes snapshots; decoding needs the aggregate's state classes and schema version."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js
        self._decoder = msgspec.json.Decoder(type=_Stored)
        self._encoder = msgspec.json.Encoder()

    @classmethod
    async def open(cls, js: JetStreamContext) -> SnapshotStore:
        """The store on the provisioned bucket (``NotProvisioned`` while it does not exist)."""
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError as exc:
            raise NotProvisioned(f"KV bucket {BUCKET} does not exist: {HINT}") from exc
        return cls(kv, js)

    @property
    def kv(self) -> KeyValue:
        return self._kv

    async def put(self, stream: StreamId, state: Any, position: Position, schema: int) -> int:
        """Store a snapshot; returns its KV revision."""
        stored = _Stored(
            snapshot_schema=schema,
            aggregate_type=stream.aggregate_type,
            aggregate_id=stream.aggregate_id,
            version=position.version,
            sequence=position.sequence,
            state_type=type(state).__name__,
            state=msgspec.to_builtins(state),
            taken_at=utcnow(),
        )
        return int(await self._kv.put(str(stream), self._encoder.encode(stored)))

    async def get(self, stream: StreamId, state_types: tuple[type[Any], ...], schema: int) -> Snapshot | None:
        """The latest usable snapshot, or ``None`` (missing, other schema version, or undecodable)."""
        try:
            entry = await self._kv.get(str(stream))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return self.decode(entry.value, state_types, schema)

    def decode(self, value: bytes, state_types: tuple[type[Any], ...], schema: int) -> Snapshot | None:
        try:
            stored = self._decoder.decode(value)
        except msgspec.DecodeError:
            return None
        if stored.snapshot_schema != schema:
            return None
        by_name = {cls.__name__: cls for cls in state_types}
        cls = by_name.get(stored.state_type)
        if cls is None:
            return None
        try:
            state = msgspec.convert(stored.state, cls)
        except msgspec.ValidationError:
            return None
        return Snapshot(
            state=state, position=Position(stored.version, stored.sequence), taken_at=stored.taken_at
        )

    async def revisions(self, stream: StreamId) -> int:
        """How many snapshots of ``stream`` are kept (for retention reporting): the bucket stream's
        message count on the key's subject. Not ``KeyValue.history``: nats-py's watcher can signal "no
        more" before the first entry arrives (its consumer info says nothing pending while the message is
        in flight to it) and then raises ``NoKeysError`` for a key that exists."""
        subject = f"$KV.{BUCKET}.{stream}"
        info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
