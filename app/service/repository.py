"""Aggregate loading: a ``Repository`` binds one decider to the event store and the snapshot store.

Loading takes the latest usable snapshot and the events after it; ``history`` and ``load_as_of`` read
the whole stream (audit trail, time travel); ``snapshot`` takes one now. Commands go through
``app.service.handler.CommandHandler``, which loads through a repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.domain.common import Decider
from app.eventstore.envelope import NEW, Position, RecordedEvent, StreamId
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Loaded[S]:
    """An aggregate's state and where its stream stands."""

    state: S
    position: Position
    from_snapshot: bool = False


class Repository[C, E, S]:
    """Loads aggregates of one type (and snapshots them)."""

    def __init__(
        self, store: EventStore, decider: Decider[C, E, S], snapshots: SnapshotStore | None = None
    ) -> None:
        self._store = store
        self._decider = decider
        self._snapshots = snapshots

    @property
    def decider(self) -> Decider[C, E, S]:
        return self._decider

    def stream(self, aggregate_id: str | int) -> StreamId:
        return StreamId(self._decider.aggregate_type, str(aggregate_id))

    async def load(self, aggregate_id: str | int, *, use_snapshot: bool = True) -> Loaded[S]:
        """Current state: latest snapshot (if usable) + the events after it."""
        stream = self.stream(aggregate_id)
        state, after, from_snapshot = self._decider.initial, NEW, False
        if use_snapshot and self._snapshots is not None:
            snap = await self._snapshots.get(stream, self._decider.state_types, self._decider.snapshot_schema)
            if snap is not None:
                state, after, from_snapshot = snap.state, snap.position, True
        loaded = await self._store.load(stream, after)
        state = self._decider.fold([e.event for e in loaded.events], state)
        return Loaded(state=state, position=loaded.position, from_snapshot=from_snapshot)

    async def history(self, aggregate_id: str | int) -> list[RecordedEvent]:
        """Every stored event of the aggregate, upcast, with metadata (the audit trail)."""
        return (await self._store.load(self.stream(aggregate_id))).events

    async def load_as_of(self, aggregate_id: str | int, at: datetime) -> Loaded[S]:
        """The state as it was at ``at``: the fold of the events that occurred until then."""
        events = [e for e in await self.history(aggregate_id) if e.envelope.occurred_at <= at]
        state = self._decider.fold([e.event for e in events])
        position = Position(events[-1].version, events[-1].sequence) if events else NEW
        return Loaded(state=state, position=position)

    async def snapshot(self, aggregate_id: str | int) -> Position:
        """Take a snapshot now (operator / ``eda snapshot``); returns the position it covers."""
        loaded = await self.load(aggregate_id)
        if loaded.position.version > 0:
            await self.put_snapshot(self.stream(aggregate_id), loaded.state, loaded.position)
        return loaded.position

    async def put_snapshot(self, stream: StreamId, state: S, position: Position) -> None:
        """Store ``state`` as of ``position``; a failure is logged, never raised (a lost snapshot only
        costs replay time)."""
        if self._snapshots is None:
            return
        try:
            await self._snapshots.put(stream, state, position, self._decider.snapshot_schema)
        except Exception:  # never fail the command for it
            log.warning("snapshot of %s at v%d failed", stream, position.version, exc_info=True)
