"""The saga's reaction pipeline on ports only (``EventStore``, ``Dispatch``): what the runner does with
each fact and each fired timer, testable without a server.

Per fact: bring the saga's view (``app.service.sagaview``: the order's events and the saga's own
records) up to the fact → decide (``app.domain.saga.view.reaction``) → append the saga's record when
the order's events do not say it all, then the order's events, each conditional on its stream and
with ids derived from the trigger (a redelivery after a crash dedupes; a conflict decides again on a
fresh view) → send the command of every running step this process has not sent yet (outbox: recorded
first, sent after; after a restart every running step's command is sent once more, deduped by its
id downstream) → (the runner acks, or holds the trigger while a step runs: ``app.saga.runner``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from datetime import datetime

from app.domain.saga import React, Saga
from app.domain.saga.view import commands_due, reaction
from app.eventstore.envelope import Metadata, RecordedEvent, StreamId, caused_by, utcnow
from app.eventstore.ports import EventStore
from app.saga.dispatch import Dispatch
from app.saga.fulfilment import next_deadline, overdue, react_to_timeout, worker_command
from app.saga.observe import SagaTelemetry
from app.service.handler import RetryPolicy
from app.service.sagaview import SagaView, SagaViews

log = logging.getLogger(__name__)

CACHE_SIZE = 20_000
SENT_SIZE = 100_000


class SagaReactor:
    def __init__(
        self,
        store: EventStore,
        dispatch: Dispatch,
        *,
        step_timeout_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._views = SagaViews(store, cache_size=CACHE_SIZE)
        self._dispatch = dispatch
        self._timeout_s = step_timeout_s
        self._retry = retry or RetryPolicy()
        self._telemetry = SagaTelemetry()
        # command ids this process sent, and when (a step's deadline counts from then at the earliest)
        self._sent: OrderedDict[str, datetime] = OrderedDict()
        self._armed: set[int] = set()  # sagas this process armed a timer for

    async def on_fact(self, recorded: RecordedEvent) -> Saga | None:
        """React to a stored fact (an order, reservation, payment or shipping event of the order);
        returns the saga after it."""
        env = recorded.envelope
        order_id = int(env.aggregate_id)
        react = React(order_id=order_id, trigger_id=env.event_id, fact=recorded.event, at=utcnow())
        # The order's own events are part of the view: the fact is folded in (usually from the cache,
        # without a read: a new order is exactly this event).
        current = env.aggregate_type == "order" and self._views.observed(order_id, recorded)
        return await self.react(react, caused_by(recorded.envelope), verified=current)

    async def on_timer(self, order_id: int, subject: str, cause: str, meta: Metadata) -> None:
        """A fired timer: time out every overdue running step, then arm the timer for the next deadline
        (the runner acks only after both, so a crash in between repeats them)."""
        now = utcnow()
        old_style = react_to_timeout(subject, now)  # a per-step timer armed by an old version
        if old_style is not None:
            reactions = [old_style]
        else:
            saga = (await self._views.load(order_id)).saga
            reactions = overdue(saga, self._timeout_s, now, self._sent) if isinstance(saga, Saga) else []
        for react in reactions:
            await self.react(react, dataclasses.replace(meta, causation_id=react.trigger_id))
        saga = (await self._views.load(order_id, fresh=False)).saga
        if isinstance(saga, Saga):
            await self.arm(saga, cause, meta)

    async def react(self, react: React, meta: Metadata, *, verified: bool = False) -> Saga | None:
        """Decide, record, send — see the module docstring."""

        async def attempt(fresh: bool) -> tuple[SagaView, SagaView, list[object]]:
            view = await self._views.load(react.order_id, fresh=fresh)
            done = reaction(react, view.saga, view.order)
            if not (done.saga_events or done.order_events or fresh or verified):
                view = await self._views.load(react.order_id)  # "nothing to do" is read, not cached
                done = reaction(react, view.saga, view.order)
            if not (done.saga_events or done.order_events):
                return view, view, list(done.decided)
            after = await self._views.append(
                react.order_id, view, (done.saga_events, done.order_events), meta, react.trigger_id
            )
            return view, after, list(done.decided)

        stream = StreamId("saga", str(react.order_id))
        before, after, decided = await self._retry.run(attempt, stream, fresh=False)
        if not isinstance(after.saga, Saga):
            return None  # not a saga's fact (yet)
        if decided or before.saga != after.saga:
            self._telemetry.reacted(before.saga, decided, after.saga)
        await self._send(after.saga, meta)
        if after.saga.terminal and not after.saga.running():
            await self._disarm(after.saga.order_id)
        return after.saga

    async def _send(self, saga: Saga, meta: Metadata, *, again: bool = False) -> None:
        """Send the command of every running step not sent by this process yet (the shipment starts
        from ``OrderPaid`` in the shipping worker: no command)."""
        names = commands_due(saga)
        due = [s for s in saga.running() if s.name in names and (again or s.command_id not in self._sent)]
        if not due:
            return
        await asyncio.gather(*(self._dispatch.send(*worker_command(saga, s), meta) for s in due))
        now = utcnow()
        for step in due:
            self._sent.setdefault(step.command_id, now)  # the first sending dates the deadline
            self._sent.move_to_end(step.command_id)
        while len(self._sent) > SENT_SIZE:
            self._sent.popitem(last=False)

    async def resend(self, saga: Saga, meta: Metadata) -> None:
        """Outbox recovery after a redelivery: every running step's command again (deduped downstream)."""
        await self._send(saga, meta, again=True)

    async def arm_for(self, order_id: int, cause: str, meta: Metadata) -> None:
        """Arm the timer of ``order_id``'s saga if a step still runs (its held trigger expired)."""
        saga = (await self._views.load(order_id, fresh=False)).saga
        if isinstance(saga, Saga) and saga.running():
            await self.arm(saga, cause, meta)

    async def arm(self, saga: Saga, cause: str, meta: Metadata) -> None:
        """Arm the saga's durable timer for its earliest running deadline (nothing when nothing runs)."""
        at = next_deadline(saga, self._timeout_s, utcnow(), self._sent)
        if at is not None:
            await self._dispatch.arm(saga.order_id, at, cause, meta)
            self._armed.add(saga.order_id)

    async def _disarm(self, order_id: int) -> None:
        """Only a timer this process armed (after a restart an unknown one fires and finds nothing)."""
        if order_id not in self._armed:
            return
        self._armed.discard(order_id)
        try:
            await self._dispatch.disarm(order_id)
        except Exception:  # the timers then fire and are ignored
            log.warning("saga %s: could not disarm its timers", order_id, exc_info=True)
