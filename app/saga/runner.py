"""``eda saga``: the orchestrator. Two durable consumers feed one reaction pipeline:

- ``saga-orchestrator`` on ``EVENTS`` (order, reservation, payment and shipping events),
- ``saga-timeouts`` on ``SAGA_TIMERS`` (a saga's fired timer: see ``app.saga.timeouts``).

Per message: load the saga → decide → append the saga events with ids derived from the trigger id (a
redelivery after a crash dedupes) → publish the commands the new ``StepStarted`` events ask for, and
arm the saga's timer when it starts (outbox: recorded first, sent after) → bring the Order aggregate
to the status the saga implies → ack. A trigger the saga already reacted to (redelivered after a crash
between append and ack) re-sends the commands of every running step, re-arms the timer and re-syncs
the order; ``Nats-Msg-Id`` dedupe and idempotent workers make that safe. Reactions of one saga are
serialised in this process (keyed locks, fetch order); several runner replicas stay correct through
the saga stream's optimistic concurrency (a conflict reloads and decides again) and the decider's
trigger-id dedupe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.domain.common import DomainError
from app.domain.order import ORDER, OrderCreated
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
from app.eventstore.consumer import KeyedLocks, PermanentError, PullLoop, ensure_consumer
from app.eventstore.envelope import EventId, Metadata, NewEvent, Position, utcnow
from app.eventstore.jetstream import STREAM, JetStreamEventStore, ensure_stream
from app.eventstore.ports import ConcurrencyError
from app.process.role import open_store, serve_role, start_role
from app.saga import timeouts
from app.saga.fulfilment import (
    FACT_SUBJECTS,
    FACT_TYPES,
    next_deadline,
    order_id_of,
    overdue,
    react_to_timeout,
    worker_command,
)
from app.saga.observe import SagaTelemetry
from app.service.repository import Repository
from app.service.statecache import StateCache
from app.settings import Settings
from app.workers.commands import COMMANDS_STREAM, commands_stream_config, publish_command

log = logging.getLogger(__name__)

ORCHESTRATOR_CONSUMER = "saga-orchestrator"
_NAMESPACE = uuid.UUID("9a4e2c1b-3f5d-4e6a-8b7c-1d2e3f4a5b6c")
CONFLICT_RETRIES = 20


def orchestrator_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=ORCHESTRATOR_CONSUMER,
        filter_subjects=FACT_SUBJECTS,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=5.0,
        max_deliver=-1,
        max_ack_pending=4096,
    )


def _ids(prefix: str, events: list[Any]) -> list[NewEvent]:
    return [
        NewEvent(event=e, event_id=EventId(str(uuid.uuid5(_NAMESPACE, f"{prefix}:{i}"))))
        for i, e in enumerate(events)
    ]


class SagaRunner:
    def __init__(self, nc: NATS, store: JetStreamEventStore, settings: Settings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._store = store
        self._settings = settings
        self._sagas: Repository[React, Any, SagaState] = Repository(store, SAGA)
        self._orders: Repository[Any, Any, Any] = Repository(store, ORDER)
        self._saga_cache = StateCache(store, self._sagas)
        self._order_cache = StateCache(store, self._orders)
        self._telemetry = SagaTelemetry()
        self._timeout_s = settings.saga_step_timeout_s
        self.reactions = 0

    async def ensure(self) -> None:
        replicas = self._settings.stream_replicas
        await ensure_stream(self._js, commands_stream_config(replicas))
        await ensure_stream(self._js, timeouts.timers_stream_config(replicas))
        await ensure_consumer(self._js, STREAM, orchestrator_consumer_config())
        await ensure_consumer(self._js, timeouts.TIMERS_STREAM, timeouts.timeouts_consumer_config())

    def loops(self) -> list[PullLoop]:
        locks = KeyedLocks()
        n = self._settings.saga_concurrency
        return [
            PullLoop(self._nc, STREAM, ORCHESTRATOR_CONSUMER, self.on_event, n, _key, "saga-events", locks),
            PullLoop(
                self._nc,
                timeouts.TIMERS_STREAM,
                timeouts.TIMEOUTS_CONSUMER,
                self.on_timer,
                n,
                _key,
                "saga-timers",
                locks,
            ),
        ]

    async def on_event(self, msg: Msg) -> None:
        if (msg.headers or {}).get("Eda-Type") not in FACT_TYPES:
            return  # OrderPaid, OrderShipped, stock events...: nothing for the saga
        recorded = self._store.codec.decode(msg.data, msg.metadata.sequence.stream if msg.metadata else 0)
        env = recorded.envelope
        if recorded.event is None:
            raise PermanentError(f"unknown event type {env.type}")
        react = React(
            order_id=order_id_of(msg.subject), trigger_id=env.event_id, fact=recorded.event, at=utcnow()
        )
        if isinstance(recorded.event, OrderCreated) and env.aggregate_version == 1:
            # A new order starts a new saga, and the order is exactly this event: both known without a
            # read (a redelivery after the saga began shows up as a conflict on its first append).
            self._saga_cache.assume_new(react.order_id)
            if not self._order_cache.cached(react.order_id):
                order = ORDER.fold([recorded.event])
                self._order_cache.appended(react.order_id, order, Position(1, recorded.sequence))
        meta = Metadata(
            correlation_id=env.correlation_id,
            causation_id=env.event_id,
            traceparent=env.traceparent,
            tracestate=env.tracestate,
        )
        with self._telemetry.processing(msg, react.order_id, message_id=env.event_id, fact=env.type):
            await self.react(react, meta)

    async def on_timer(self, msg: Msg) -> None:
        """A fired timer: time out every overdue running step, then arm the timer for the next
        deadline (acked only after both, so a crash in between repeats them)."""
        order_id = order_id_of(msg.subject)
        h = msg.headers or {}
        cause = f"fired:{msg.metadata.sequence.stream if msg.metadata else msg.subject}"
        meta = Metadata(
            correlation_id=h.get("Eda-Correlation-Id", cause),
            causation_id=cause,
            traceparent=h.get("traceparent"),
            tracestate=h.get("tracestate"),
        )
        with self._telemetry.processing(msg, order_id, message_id=cause, fact="StepTimedOut"):
            now = utcnow()
            old_style = react_to_timeout(msg.subject, now)  # a per-step timer armed by an old version
            if old_style is not None:
                reactions = [old_style]
            else:
                loaded = await self._saga_cache.load(order_id)
                saga = loaded.state
                reactions = overdue(saga, self._timeout_s, now) if isinstance(saga, Saga) else []
            for react in reactions:
                await self.react(react, dataclasses.replace(meta, causation_id=react.trigger_id))
            saga = (await self._saga_cache.load(order_id, verify=False)).state
            if isinstance(saga, Saga):
                await self._arm(saga, cause, meta)

    async def react(self, react: React, meta: Metadata) -> None:
        """Decide, record, send, sync — see the module docstring. The saga's state comes from the cache
        unverified (its append's expected sequence verifies it); a conflict, or a decision to do
        nothing, is taken again on a state read from the stream."""
        verify = False
        for attempt in range(CONFLICT_RETRIES):
            loaded = await self._saga_cache.load(react.order_id, verify=verify)
            state = loaded.state
            if isinstance(state, Saga) and react.trigger_id in state.seen:  # seen stays seen
                await self._resend(state, meta)
                await self._sync_order(state, meta)
                return
            events = list(SAGA.decide(react, state))
            if not events:
                if not verify:
                    verify = True
                    continue
                return
            stream = self._sagas.stream(react.order_id)
            try:
                result = await self._store.append(
                    stream, _ids(react.trigger_id, events), loaded.position, meta
                )
            except ConcurrencyError:
                verify = True
                await asyncio.sleep(0.002 * (attempt + 1))
                continue
            self.reactions += 1
            new_state = SAGA.fold(events, state)
            assert isinstance(new_state, Saga)
            self._telemetry.reacted(state, events)  # decision on the span, outcome/step metrics
            self._saga_cache.appended(react.order_id, new_state, result.position)
            await self._send(new_state, started_steps(events), meta)
            if not isinstance(state, Saga):  # the saga starts: its timer, for the first step
                await self._arm(new_state, react.trigger_id, meta)
            if changes_order(events):
                await self._sync_order(new_state, meta)
            if new_state.terminal and not new_state.running():
                await self._disarm(new_state.order_id)
            return
        raise ConcurrencyError(self._sagas.stream(react.order_id), loaded.position, "too many conflicts")

    async def _send(self, saga: Saga, names: list[StepName], meta: Metadata) -> None:
        """Publish the command of each named step that is running."""
        coros = []
        for name in dict.fromkeys(names):
            step = saga.step(name)
            if step is None or step.status is not StepStatus.RUNNING:
                continue
            worker, cmd = worker_command(saga, step)
            coros.append(publish_command(self._js, worker, cmd, meta))
        if coros:
            await asyncio.gather(*coros)

    async def _arm(self, saga: Saga, cause: str, meta: Metadata) -> None:
        """Arm the saga's timer for its earliest running deadline (nothing when nothing runs)."""
        at = next_deadline(saga, self._timeout_s, utcnow())
        if at is not None:
            await timeouts.arm(self._js, saga.order_id, at, cause, meta)

    async def _disarm(self, order_id: int) -> None:
        try:
            await timeouts.disarm(self._js, order_id)
        except Exception:  # the timers then fire and are ignored
            log.warning("saga %s: could not disarm its timers", order_id, exc_info=True)

    async def _resend(self, saga: Saga, meta: Metadata) -> None:
        """Outbox recovery: every running step's command and the saga's timer again (deduped
        downstream; re-arming an armed timer for the same deadline changes nothing)."""
        await self._send(saga, [s.name for s in saga.running()], meta)
        await self._arm(saga, f"resend:{meta.causation_id}", meta)

    async def _sync_order(self, saga: Saga, meta: Metadata) -> None:
        """Bring the order to the status the saga implies, one transition per append (single-message
        appends are far cheaper than atomic batches; a crash between two is finished by the redelivery)."""
        attempt = 0
        verify = False  # the cached order is trusted until a conflict or a refusal says otherwise
        while attempt < CONFLICT_RETRIES:
            loaded = await self._order_cache.load(saga.order_id, verify=verify)
            commands = order_commands(saga, loaded.state, utcnow())
            if not commands:  # the cache is never ahead of the stream and orders only move forward
                return
            try:
                events = list(ORDER.decide(commands[0], loaded.state))
            except DomainError as exc:  # the order moved on (a user's cancel): the saga will hear of it
                if not verify:
                    verify = True
                    continue
                log.info("order %s: %s", saga.order_id, exc.message)
                return
            if not events:
                if not verify:
                    verify = True
                    continue
                return
            state = ORDER.fold(events, loaded.state)
            prefix = f"order-sync:{saga.order_id}:{loaded.position.version}:{type(events[0]).__name__}"
            try:
                result = await self._store.append(
                    self._orders.stream(saga.order_id), _ids(prefix, events), loaded.position, meta
                )
                self._order_cache.appended(saga.order_id, state, result.position)
            except ConcurrencyError:
                attempt += 1
                verify = True
                await asyncio.sleep(0.002 * attempt)


def _key(msg: Msg) -> str:
    return str(order_id_of(msg.subject))


async def saga_loops(
    nc: NATS, store: JetStreamEventStore, settings: Settings
) -> tuple[SagaRunner, list[PullLoop]]:
    runner = SagaRunner(nc, store, settings)
    await runner.ensure()
    return runner, runner.loops()


async def run_saga(settings: Settings) -> None:
    """``eda saga``: the orchestrator alone."""

    async def loops(nc: NATS) -> list[PullLoop]:
        store, _ = await open_store(nc, settings)
        return (await saga_loops(nc, store, settings))[1]

    await serve_role("saga", loops, settings)


__all__ = ["COMMANDS_STREAM", "SagaRunner", "saga_loops"]


async def saga_role(settings: Settings) -> None:
    """The orchestrator inside another process (``eda dev``): runs until cancelled, no health server."""

    async def setup(nc: NATS) -> list[PullLoop]:
        store, _ = await open_store(nc, settings)
        return (await saga_loops(nc, store, settings))[1]

    nc, loops = await start_role("saga", setup, settings)  # retried while JetStream is unavailable
    try:
        await _run_until_cancelled(loops)
    finally:
        await nc.close()


async def _run_until_cancelled(loops: list[PullLoop]) -> None:
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for loop in loops:
            loop.stop()
        await asyncio.wait(tasks, timeout=10)
