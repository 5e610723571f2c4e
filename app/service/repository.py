"""The service layer: ``execute(command) = load → decide → append``, and aggregate loading.

A ``Repository`` binds one decider to the event store and the snapshot store. Loading takes the latest
usable snapshot and the events after it; appending takes a snapshot whenever the version crosses a
multiple of ``snapshot_every``. Nothing else is written on the command path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.domain.common import Decider
from app.eventstore.envelope import NEW, Metadata, NewEvent, Position, RecordedEvent, StreamId
from app.eventstore.ports import ConcurrencyError, EventStore
from app.eventstore.snapshots import SnapshotStore

log = logging.getLogger(__name__)


class VersionMismatch(ConcurrencyError):
    """The caller's expected version (e.g. ``If-Match``) is not the aggregate's current version."""


@dataclass(frozen=True, slots=True)
class Loaded[S]:
    """An aggregate's state and where its stream stands."""

    state: S
    position: Position
    from_snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Executed[S, E]:
    """The outcome of a command: the events it appended (maybe none) and the resulting state."""

    events: list[E]
    state: S
    position: Position
    duplicate: bool = False


class Repository[C, E, S]:
    """Loads and changes aggregates of one type."""

    def __init__(
        self,
        store: EventStore,
        decider: Decider[C, E, S],
        snapshots: SnapshotStore | None = None,
        *,
        snapshot_every: int = 100,
    ) -> None:
        self._store = store
        self._decider = decider
        self._snapshots = snapshots
        self._every = snapshot_every

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

    async def execute(
        self,
        aggregate_id: str | int,
        command: C,
        meta: Metadata,
        *,
        expected_version: int | None = None,
        retries: int = 0,
    ) -> Executed[S, E]:
        """Load, decide, append. ``expected_version`` pins the version the caller saw (``If-Match``);
        ``retries`` re-runs the whole cycle on a concurrency conflict (for callers that may re-decide)."""
        attempt = 0
        while True:
            loaded = await self.load(aggregate_id)
            if expected_version is not None and loaded.position.version != expected_version:
                raise VersionMismatch(self.stream(aggregate_id), loaded.position, "(If-Match)")
            events = list(self._decider.decide(command, loaded.state))
            if not events:
                return Executed(events=[], state=loaded.state, position=loaded.position)
            try:
                return await self.append(aggregate_id, events, loaded, meta)
            except ConcurrencyError:
                if attempt >= retries or expected_version is not None:
                    raise
                attempt += 1

    async def append(
        self, aggregate_id: str | int, events: Sequence[E], loaded: Loaded[S], meta: Metadata
    ) -> Executed[S, E]:
        """Append decided ``events`` on top of ``loaded``; snapshot when a multiple is crossed."""
        stream = self.stream(aggregate_id)
        result = await self._store.append(stream, [NewEvent(event=e) for e in events], loaded.position, meta)
        state = self._decider.fold(events, loaded.state)
        if self._snapshots is not None and (
            result.position.version // self._every > loaded.position.version // self._every
        ):
            await self._snapshot(stream, state, result.position)
        return Executed(
            events=list(events), state=state, position=result.position, duplicate=result.duplicate
        )

    async def snapshot(self, aggregate_id: str | int) -> Position:
        """Take a snapshot now (operator / ``eda snapshot``); returns the position it covers."""
        loaded = await self.load(aggregate_id)
        if loaded.position.version > 0:
            await self._snapshot(self.stream(aggregate_id), loaded.state, loaded.position)
        return loaded.position

    async def _snapshot(self, stream: StreamId, state: S, position: Position) -> None:
        if self._snapshots is None:
            return
        try:
            await self._snapshots.put(stream, state, position, self._decider.snapshot_schema)
        except Exception:  # a lost snapshot only costs replay time; never fail the command for it
            log.warning("snapshot of %s at v%d failed", stream, position.version, exc_info=True)
