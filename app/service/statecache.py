"""An in-process cache of aggregate states for hot loops (saga runner, workers): a cached aggregate
is brought up to date by reading only the events after its cached position — usually none, one
round trip — instead of replaying its stream. Safe with other writers: streams are append-only and
every append still carries the expected sequence, so a stale read only costs a conflict and a retry.

``load(id, verify=False)`` skips even that round trip and answers from the cache: for callers that
append what they decide (the append's expected sequence verifies the state) and that load again with
``verify=True`` after a conflict, or before concluding "nothing to do" from a cached state (a stale
state could hide a decision). ``app.service.handler.CommandHandler`` is its user.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from app.eventstore.envelope import Position
from app.eventstore.ports import EventStore
from app.service.repository import Loaded, Repository


class StateCache[S]:
    """LRU of ``Loaded`` states of one aggregate type (``size`` entries)."""

    def __init__(self, store: EventStore, repo: Repository[Any, Any, S], *, size: int = 20_000) -> None:
        self._store = store
        self._repo = repo
        self._size = size
        self._entries: OrderedDict[str, Loaded[S]] = OrderedDict()

    @property
    def repository(self) -> Repository[Any, Any, S]:
        return self._repo

    async def load(self, aggregate_id: str | int, *, verify: bool = True) -> Loaded[S]:
        key = str(aggregate_id)
        cached = self._entries.get(key)
        if cached is not None and not verify:
            self._entries.move_to_end(key)
            return cached
        if cached is None:
            loaded = await self._repo.load(aggregate_id)
        else:
            new = await self._store.load(self._repo.stream(aggregate_id), cached.position)
            if not new.events:
                self._entries.move_to_end(key)
                return cached
            state = self._repo.decider.fold([e.event for e in new.events], cached.state)
            loaded = Loaded(state=state, position=new.position)
        self._remember(key, loaded)
        return loaded

    def appended(self, aggregate_id: str | int, state: S, position: Position) -> None:
        """Record the state after our own append (the next load then reads nothing)."""
        self._remember(str(aggregate_id), Loaded(state=state, position=position))

    def cached(self, aggregate_id: str | int) -> bool:
        return str(aggregate_id) in self._entries

    def _remember(self, key: str, loaded: Loaded[S]) -> None:
        self._entries[key] = loaded
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
