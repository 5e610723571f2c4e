"""The saga's state read from the store: two streams — the order's (``events.order.<id>``) and the
saga's own records (``events.saga.<id>``) — folded in their global order by
``app.domain.saga.view``, with the order's state beside it, and the conditional appends a reaction
makes to them. Every reader of a saga (the orchestrator, ``GET /orders/{id}/saga``, the console,
``eda status``) loads it here.

``SagaViews(store, cache_size=N)`` keeps the last N views for the orchestrator's hot loop, brought up to
date by reading only what follows their positions (``fresh=True``) or answered unread (``fresh=False``:
the appends' expected sequences verify them, as in ``app.service.statecache``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.domain.order import ORDER
from app.domain.order.events import OrderEvent
from app.domain.order.state import OrderState
from app.domain.saga import INITIAL, SagaAdvanced, SagaEvent, SagaState
from app.domain.saga.view import evolve_view, fold_view
from app.eventstore.envelope import NEW, Metadata, Position, RecordedEvent, StreamId
from app.eventstore.ports import EventStore
from app.service.handler import derived_ids


@dataclass(frozen=True, slots=True)
class SagaView:
    saga: SagaState
    order: OrderState
    saga_at: Position
    order_at: Position


EMPTY = SagaView(INITIAL, ORDER.initial, NEW, NEW)


def streams(order_id: int) -> tuple[StreamId, StreamId]:
    """(the saga's records, the order's events)."""
    return StreamId("saga", str(order_id)), StreamId("order", str(order_id))


def merged(records: Sequence[RecordedEvent], orders: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """Both streams in the order the saga folds them: a record right after the order event whose
    version it was decided on (``SagaAdvanced.order_version``), else (records of the earlier design)
    in stream order; the order's events by version."""

    def key(r: RecordedEvent) -> tuple[int, int, int]:
        if r.envelope.aggregate_type == "order":
            return (r.version, 0, r.sequence)
        seen = getattr(r.event, "order_version", None)
        if seen is None:
            offset = orders[0].version - 1 if orders else 0
            seen = offset + sum(1 for o in orders if o.sequence < r.sequence)
        return (seen, 1, r.sequence)

    return sorted([*records, *orders], key=key)


def fold_recorded(view: SagaView, recorded: Sequence[RecordedEvent]) -> SagaView:
    """``recorded`` events of both streams (in the order ``merged`` puts them) onto ``view``."""
    saga, order, saga_at, order_at = view.saga, view.order, view.saga_at, view.order_at
    for r in recorded:
        if r.event is None:
            continue  # a type this process does not know (a newer version's): nothing it can fold
        saga = evolve_view(saga, r.event)
        at = Position(r.version, r.sequence)
        if r.envelope.aggregate_type == "order":
            order, order_at = ORDER.evolve(order, r.event), at
        else:
            saga_at = at
    return SagaView(saga, order, saga_at, order_at)


def _decided_before(record: RecordedEvent, order_at: Position) -> bool:
    seen = getattr(record.event, "order_version", None)
    return seen is not None and seen < order_at.version


def _seen(event: SagaEvent, order_version: int) -> SagaEvent:
    """A record says how many order events its decision saw (see ``merged``)."""
    return replace(event, order_version=order_version) if isinstance(event, SagaAdvanced) else event


class SagaViews:
    def __init__(self, store: EventStore, *, cache_size: int = 0) -> None:
        self._store = store
        self._size = cache_size
        self._entries: OrderedDict[int, SagaView] = OrderedDict()

    async def load(self, order_id: int, *, fresh: bool = True) -> SagaView:
        cached = self._entries.get(order_id)
        if cached is not None and not fresh:
            self._entries.move_to_end(order_id)
            return cached
        base = cached or EMPTY
        saga_stream, order_stream = streams(order_id)
        records = await self._store.load(saga_stream, base.saga_at)
        orders = await self._store.load(order_stream, base.order_at)
        if base is not EMPTY and any(_decided_before(r, base.order_at) for r in records.events):
            self._entries.pop(order_id, None)  # a replica decided on an older order: fold anew
            return await self.load(order_id)
        view = fold_recorded(base, merged(records.events, orders.events))
        self._remember(order_id, view)
        return view

    def observed(self, order_id: int, recorded: RecordedEvent) -> bool:
        """An order event just read from the stream (e.g. the fact being handled): folded into the
        cached view when it is the next one; ``True`` when the cached view now holds it."""
        if not self._size:
            return False  # nothing cached: the reaction reads the streams
        cached = self._entries.get(order_id)
        if cached is None and recorded.version == 1:
            cached = EMPTY
        if cached is None or recorded.version > cached.order_at.version + 1:
            return False
        if recorded.version == cached.order_at.version + 1:
            cached = fold_recorded(cached, [recorded])
            self._remember(order_id, cached)
        return recorded.version <= cached.order_at.version

    async def append(
        self,
        order_id: int,
        view: SagaView,
        events: tuple[Sequence[SagaEvent], Sequence[OrderEvent]],
        meta: Metadata,
        cause: str,
    ) -> SagaView:
        """The saga's records, then the order's events one by one (single-message appends are far
        cheaper than atomic batches), each conditional on its stream's position in ``view``; ids
        derived from ``cause`` so that repeating a reaction after a crash stores nothing twice."""
        saga_stream, order_stream = streams(order_id)
        saga_events = [_seen(e, view.order_at.version) for e in events[0]]
        if saga_events:
            result = await self._store.append(
                saga_stream, derived_ids(cause, saga_stream, view.saga_at, saga_events), view.saga_at, meta
            )
            view = replace(view, saga=fold_view(saga_events, view.saga), saga_at=result.position)
            self._remember(order_id, view)
        for event in events[1]:
            new = derived_ids(cause, order_stream, view.order_at, [event])
            result = await self._store.append(order_stream, new, view.order_at, meta)
            saga, order = evolve_view(view.saga, event), ORDER.evolve(view.order, event)
            view = SagaView(saga, order, view.saga_at, result.position)
            self._remember(order_id, view)
        return view

    def _remember(self, order_id: int, view: SagaView) -> None:
        if not self._size:
            return
        self._entries[order_id] = view
        self._entries.move_to_end(order_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
