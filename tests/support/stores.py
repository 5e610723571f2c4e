"""Event-store harnesses for unit tests, on the in-memory twin.

``memory_store()`` is a fresh ``InMemoryEventStore`` knowing every event type. ``RivalWriter`` wraps
one so that a rival writer wins every race on the streams it watches: right before each of our
appends there, the rival appends an event of its own — a real conflict on the twin, every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, NewEvent, Position, RawMessage, StreamId
from app.eventstore.jsapi import subject_matches
from app.eventstore.memory import InMemoryEventStore
from app.eventstore.ports import AppendRequest, AppendResult, EventStoreBase, LoadedStream

RIVAL = Metadata(correlation_id="rival")


def memory_store() -> InMemoryEventStore:
    return InMemoryEventStore(EventCodec(all_event_types()))


class RivalWriter(EventStoreBase):
    def __init__(self, store: InMemoryEventStore, rival: Callable[[StreamId], Any], watch: str) -> None:
        self.store = store
        self._rival = rival
        self._watch = watch
        self.rival_appends = 0

    @property
    def codec(self) -> EventCodec:
        return self.store.codec

    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]:
        for req in requests:
            if subject_matches(self._watch, req.stream.subject):
                current = (await self.store.load(req.stream)).position
                await self.store.append(req.stream, [NewEvent(event=self._rival(req.stream))], current, RIVAL)
                self.rival_appends += 1
        return await self.store.append_multi(requests, meta)

    async def load(self, stream: StreamId, after: Position | None = None) -> LoadedStream:
        return await self.store.load(stream, after)

    async def read_raw(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RawMessage]:
        return await self.store.read_raw(from_sequence, limit=limit, subjects=subjects)

    async def last_sequence(self) -> int:
        return await self.store.last_sequence()

    async def close(self) -> None:
        await self.store.close()
