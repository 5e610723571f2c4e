"""The one command pipeline: load → decide → append, retried on a conflict. Nothing else writes events.

``CommandHandler`` binds one decider to the event store and is configured per use:

- a state cache (``cache_size``): hot loops (saga, workers) decide on the cached state without a read
  and let the append's expected sequence verify it — a conflict, or a decision to do nothing (or a
  refusal) taken on an unverified state, is taken again on a state read from the stream;
- ``assume_new`` (per call): the command normally opens the aggregate, so the first decision is taken
  on the initial state without any read; ``start`` (per call): a state and position the caller holds;
- ``cause`` (per call): deterministic event ids (``derived_ids``), so a redelivered message appends
  the same ids and the store recognises its own earlier append; without it ids are fresh UUIDv7s;
- ``expected_version`` (per call, ``If-Match``): the version the caller saw; never retried;
- snapshots every ``snapshot_every`` versions (best effort: a lost snapshot costs replay time only);
- ``retry``: ONE ``RetryPolicy`` — how many conflicts in a row, with jittered exponential backoff;
  when they run out, ``RetriesExhausted`` is raised (never a silent give-up).

``execute`` returns an ``Executed``: the events appended, the state and position before and after —
what a reaction needs to emit its follow-ups. ``RetryPolicy.run`` is the conflict-retry loop itself,
also used by callers whose unit of consistency spans several streams (the inventory worker).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from app.domain.common import Decider, DomainError
from app.eventstore.envelope import NEW, EventId, Metadata, NewEvent, Position, StreamId
from app.eventstore.ports import ConcurrencyError, EventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Loaded, Repository
from app.service.statecache import StateCache

log = logging.getLogger(__name__)

_IDS = uuid.UUID("0b5f3c1e-7d64-4a8b-8f2e-5c9d1e2f3a4b")


def derived_ids(cause: str, stream: StreamId, expected: Position, events: Sequence[Any]) -> list[NewEvent]:
    """Event ids derived from what caused them and where they go (uuid5 of cause, stream, version and
    type): the same cause appending the same decision at the same place gets the same ids, so the store
    reports a redelivery's append as a duplicate; two different events never share an id (a hold and
    its later give-back by one command differ in version and type)."""
    return [
        NewEvent(
            event=event,
            event_id=EventId(str(uuid.uuid5(_IDS, f"{cause}:{stream}:{expected.version + i}:{event.TYPE}"))),
        )
        for i, event in enumerate(events, start=1)
    ]


class VersionMismatch(ConcurrencyError):
    """The caller's expected version (e.g. ``If-Match``) is not the aggregate's current version."""


class RetriesExhausted(ConcurrencyError):
    """Every attempt the retry policy allows met a conflict: the stream is too contended right now."""


class Stale(Exception):
    """A decision taken on an unverified state (cached, assumed or given) that appends nothing, or
    refuses: take it again on a state read from the stream, now (no backoff)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How conflicts are retried: up to ``attempts`` tries, sleeping a random time up to
    ``first_delay_s * 2**n`` (capped at ``max_delay_s``) after the n-th conflict ("full jitter":
    contenders spread out instead of colliding again in lock step)."""

    attempts: int = 20
    first_delay_s: float = 0.002
    max_delay_s: float = 0.1

    def delay(self, conflicts: int) -> float:
        return random.uniform(0, min(self.max_delay_s, self.first_delay_s * 2 ** (conflicts - 1)))

    async def run[T](
        self, attempt: Callable[[bool], Awaitable[T]], stream: StreamId, *, fresh: bool = False
    ) -> T:
        """``await attempt(fresh)`` until it returns; ``fresh`` says the attempt must read the stream
        (after the first attempt, always). Every ``ConcurrencyError`` counts; one after a fresh read
        (contention) backs off, one after an unverified first attempt (a stale cache) retries at once,
        as ``Stale`` does. Raises ``RetriesExhausted`` (or, with one attempt, the conflict itself)."""
        conflicts = 0
        while True:
            try:
                return await attempt(fresh)
            except Stale:
                pass
            except ConcurrencyError as exc:
                if isinstance(exc, VersionMismatch) or self.attempts <= 1:
                    raise
                conflicts += 1
                if conflicts >= self.attempts:
                    log.error("%s: %d conflicts in a row, giving up", stream, conflicts)
                    raise RetriesExhausted(stream, exc.expected, f"{conflicts} conflicts in a row") from exc
                if fresh:
                    await asyncio.sleep(self.delay(conflicts))
            fresh = True


NO_RETRY = RetryPolicy(attempts=1)


class Options[S](TypedDict, total=False):
    """How one command runs (see the module docstring)."""

    cause: str | None
    assume_new: bool
    start: Loaded[S] | None
    expected_version: int | None


@dataclass(frozen=True, slots=True)
class Executed[S, E]:
    """The outcome of a command: the events it appended (maybe none), the state and position after
    them, and the state they were decided on (what a reaction compares to emit its follow-ups)."""

    events: list[E]
    state: S
    position: Position
    before: S
    duplicate: bool = False


class CommandHandler[C, E, S]:
    """Runs commands against aggregates of one type (see the module docstring)."""

    def __init__(
        self,
        store: EventStore,
        decider: Decider[C, E, S],
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 100,
        cache_size: int = 0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._decider = decider
        self._repo = Repository(store, decider, snapshots)
        self._every = snapshot_every
        self._cache = StateCache(store, self._repo, size=cache_size) if cache_size else None
        self._retry = retry or RetryPolicy()

    @property
    def decider(self) -> Decider[C, E, S]:
        return self._decider

    @property
    def repository(self) -> Repository[C, E, S]:
        return self._repo

    def stream(self, aggregate_id: str | int) -> StreamId:
        return self._repo.stream(aggregate_id)

    async def load(self, aggregate_id: str | int, *, fresh: bool = True) -> Loaded[S]:
        """The current state; from the cache unread when ``fresh`` is ``False``, else verified."""
        if self._cache is None:
            return await self._repo.load(aggregate_id)
        return await self._cache.load(aggregate_id, verify=fresh)

    def remember(self, aggregate_id: str | int, state: S, position: Position) -> None:
        """The caller knows this state (e.g. a new aggregate is exactly the event it just read)."""
        if self._cache is not None and not self._cache.cached(aggregate_id):
            self._cache.appended(aggregate_id, state, position)

    async def execute(
        self, aggregate_id: str | int, command: C, meta: Metadata, **options: Unpack[Options[S]]
    ) -> Executed[S, E]:
        """Decide ``command`` on the aggregate's state and append the events (see the module doc)."""
        return await self.execute_for(aggregate_id, lambda _: command, meta, **options)

    async def execute_for(
        self,
        aggregate_id: str | int,
        choose: Callable[[S], C | None],
        meta: Metadata,
        *,
        cause: str | None = None,
        assume_new: bool = False,
        start: Loaded[S] | None = None,
        expected_version: int | None = None,
    ) -> Executed[S, E]:
        """As ``execute``, with the command chosen from the state (``None``: nothing to do)."""
        if assume_new and (self._cache is None or not self._cache.cached(aggregate_id)):
            start = Loaded(self._decider.initial, NEW)

        async def attempt(fresh: bool) -> Executed[S, E]:
            loaded = start if start is not None and not fresh else await self.load(aggregate_id, fresh=fresh)
            if expected_version is not None and loaded.position.version != expected_version:
                if fresh:
                    raise VersionMismatch(self.stream(aggregate_id), loaded.position, "(If-Match)")
                raise Stale
            events = self._decide(choose, loaded.state, fresh)
            if not events:
                if not fresh:
                    raise Stale
                return Executed([], loaded.state, loaded.position, loaded.state)
            return await self.append(aggregate_id, events, loaded, meta, cause=cause)

        retry = self._retry if expected_version is None else NO_RETRY
        # without a cache or a given state, the first attempt reads the stream: it is verified
        verified = start is None and self._cache is None
        return await retry.run(attempt, self.stream(aggregate_id), fresh=verified)

    def _decide(self, choose: Callable[[S], C | None], state: S, verified: bool) -> list[E]:
        """The events of the chosen command; a refusal on an unverified state is ``Stale``."""
        command = choose(state)
        if command is None:
            return []
        try:
            return list(self._decider.decide(command, state))
        except DomainError:
            if verified:
                raise
            raise Stale from None

    async def append(
        self,
        aggregate_id: str | int,
        events: Sequence[E],
        loaded: Loaded[S],
        meta: Metadata,
        *,
        cause: str | None = None,
    ) -> Executed[S, E]:
        """Append decided ``events`` on top of ``loaded`` (one conditional append, no retry); remember
        the new state; snapshot when a multiple of ``snapshot_every`` is crossed."""
        stream = self.stream(aggregate_id)
        new = (
            derived_ids(cause, stream, loaded.position, events)
            if cause is not None
            else [NewEvent(event=e) for e in events]
        )
        result = await self._store.append(stream, new, loaded.position, meta)
        state = self._decider.fold(events, loaded.state)
        if self._cache is not None:
            self._cache.appended(aggregate_id, state, result.position)
        if result.position.version // self._every > loaded.position.version // self._every:
            await self._repo.put_snapshot(stream, state, result.position)  # a no-op without a store
        return Executed(list(events), state, result.position, loaded.state, result.duplicate)
