"""The saga's reaction pipeline on ports only (``EventStore``, ``Dispatch``): what the runner does with
each fact and each fired timer, testable without a server.

Per fact: decide on the saga's state → append the saga events with ids derived from the trigger id (a
redelivery after a crash dedupes) → send the commands the new ``StepStarted`` events ask for, and arm
the saga's timer when it starts (outbox: recorded first, sent after) → bring the Order aggregate to
the status the saga implies → (the runner acks). A trigger the saga already reacted to (redelivered
after a crash between append and ack) re-sends the commands of every running step, re-arms the timer
and re-syncs the order; command-id dedupe and idempotent workers make that safe. The saga and the
order are decided on cached states (``CommandHandler``: the append's expected sequence verifies them;
a conflict decides again on a fresh read), so a reaction usually costs one append and no read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from app.domain.common import DomainError
from app.domain.order import ORDER, OrderCreated
from app.domain.order.commands import OrderCommand
from app.domain.order.events import OrderEvent
from app.domain.order.state import OrderState
from app.domain.saga import (
    SAGA,
    React,
    Saga,
    SagaState,
    StepName,
    StepStatus,
    changes_order,
    order_commands,
    started_steps,
)
from app.eventstore.envelope import Metadata, Position, RecordedEvent, utcnow
from app.eventstore.ports import EventStore
from app.saga.dispatch import Dispatch
from app.saga.fulfilment import next_deadline, overdue, react_to_timeout, worker_command
from app.saga.observe import SagaTelemetry
from app.service.handler import CommandHandler, RetryPolicy

log = logging.getLogger(__name__)

CACHE_SIZE = 20_000


class SagaReactor:
    def __init__(
        self,
        store: EventStore,
        dispatch: Dispatch,
        *,
        step_timeout_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._sagas: CommandHandler[React, Any, SagaState] = CommandHandler(
            store, SAGA, cache_size=CACHE_SIZE, retry=retry
        )
        self._orders: CommandHandler[OrderCommand, OrderEvent, OrderState] = CommandHandler(
            store, ORDER, cache_size=CACHE_SIZE, retry=retry
        )
        self._dispatch = dispatch
        self._timeout_s = step_timeout_s
        self._telemetry = SagaTelemetry()

    async def on_fact(self, recorded: RecordedEvent) -> None:
        """React to a stored fact (an order, reservation, payment or shipping event of the order)."""
        env = recorded.envelope
        react = React(
            order_id=int(env.aggregate_id), trigger_id=env.event_id, fact=recorded.event, at=utcnow()
        )
        opens = isinstance(recorded.event, OrderCreated) and env.aggregate_version == 1
        if opens:  # a new order: its order is exactly this event, known without a read
            self._orders.remember(
                react.order_id, ORDER.fold([recorded.event]), Position(1, recorded.sequence)
            )
        meta = Metadata(
            correlation_id=env.correlation_id,
            causation_id=env.event_id,
            traceparent=env.traceparent,
            tracestate=env.tracestate,
        )
        # A new order starts a new saga, decided without a read (a redelivery after the saga began
        # shows up as a conflict on its first append).
        await self.react(react, meta, assume_new=opens)

    async def on_timer(self, order_id: int, subject: str, cause: str, meta: Metadata) -> None:
        """A fired timer: time out every overdue running step, then arm the timer for the next deadline
        (the runner acks only after both, so a crash in between repeats them)."""
        now = utcnow()
        old_style = react_to_timeout(subject, now)  # a per-step timer armed by an old version
        if old_style is not None:
            reactions = [old_style]
        else:
            saga = (await self._sagas.load(order_id)).state
            reactions = overdue(saga, self._timeout_s, now) if isinstance(saga, Saga) else []
        for react in reactions:
            await self.react(react, dataclasses.replace(meta, causation_id=react.trigger_id))
        saga = (await self._sagas.load(order_id, fresh=False)).state
        if isinstance(saga, Saga):
            await self._arm(saga, cause, meta)

    async def react(self, react: React, meta: Metadata, *, assume_new: bool = False) -> None:
        """Decide, record, send, sync — see the module docstring."""
        done = await self._sagas.execute(
            react.order_id, react, meta, cause=react.trigger_id, assume_new=assume_new
        )
        saga = done.state
        if not isinstance(saga, Saga):
            return  # not a saga's fact (yet)
        if not done.events:
            if react.trigger_id in saga.seen:  # a redelivery: outbox recovery
                await self._resend(saga, meta)
                await self._sync_order(saga, meta)
            return
        self._telemetry.reacted(done.before, done.events)  # decision on the span, outcome/step metrics
        await self._send(saga, started_steps(done.events), meta)
        if not isinstance(done.before, Saga):  # the saga starts: its timer, for the first step
            await self._arm(saga, react.trigger_id, meta)
        if changes_order(done.events):
            await self._sync_order(saga, meta)
        if saga.terminal and not saga.running():
            await self._disarm(saga.order_id)

    async def _send(self, saga: Saga, names: list[StepName], meta: Metadata) -> None:
        """Send the command of each named step that is running."""
        coros = []
        for name in dict.fromkeys(names):
            step = saga.step(name)
            if step is None or step.status is not StepStatus.RUNNING:
                continue
            worker, cmd = worker_command(saga, step)
            coros.append(self._dispatch.send(worker, cmd, meta))
        if coros:
            await asyncio.gather(*coros)

    async def _arm(self, saga: Saga, cause: str, meta: Metadata) -> None:
        """Arm the saga's timer for its earliest running deadline (nothing when nothing runs)."""
        at = next_deadline(saga, self._timeout_s, utcnow())
        if at is not None:
            await self._dispatch.arm(saga.order_id, at, cause, meta)

    async def _disarm(self, order_id: int) -> None:
        try:
            await self._dispatch.disarm(order_id)
        except Exception:  # the timers then fire and are ignored
            log.warning("saga %s: could not disarm its timers", order_id, exc_info=True)

    async def _resend(self, saga: Saga, meta: Metadata) -> None:
        """Outbox recovery: every running step's command and the saga's timer again (deduped
        downstream; re-arming an armed timer for the same deadline changes nothing)."""
        await self._send(saga, [s.name for s in saga.running()], meta)
        await self._arm(saga, f"resend:{meta.causation_id}", meta)

    async def _sync_order(self, saga: Saga, meta: Metadata) -> None:
        """Bring the order to the status the saga implies, one transition per append (single-message
        appends are far cheaper than atomic batches; a crash between two is finished by the
        redelivery). Nothing to do on the cached order is final: the cache is never ahead of the
        stream and orders only move forward. A refusal (a user's cancel came first) is logged: the
        saga hears of it as a fact."""

        def next_command(order: OrderState) -> OrderCommand | None:
            commands = order_commands(saga, order, utcnow())
            return commands[0] if commands else None

        order = (await self._orders.load(saga.order_id, fresh=False)).state
        while next_command(order) is not None:
            try:
                done = await self._orders.execute_for(saga.order_id, next_command, meta, cause="order-sync")
            except DomainError as exc:
                log.info("order %s: %s", saga.order_id, exc.message)
                return
            if not done.events:
                return
            order = done.state
