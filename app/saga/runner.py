"""The saga orchestrator's runner: two durable consumers feed one reaction pipeline
(``app.saga.reactor``):

- ``saga-orchestrator`` on ``EVENTS`` (order, reservation, payment and shipping events),
- ``saga-timeouts`` on ``SAGA_TIMERS`` (a saga's fired timer: see ``app.saga.timeouts``).

Each message is acked after its reaction (decide → record → send), or held while its saga's step runs
(``app.saga.holding``: the step's timeout without a stored timer on the happy path); a redelivered
fact also re-sends the running steps' commands (outbox recovery). Reactions of one saga are
serialised in this process (keyed locks, fetch order); several runner replicas stay correct through
the streams' optimistic concurrency (a conflict reloads and decides again) and state-based dedupe.
The composition roots (``app.runtime``) build the store and run the loops.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.eventstore.consumer import Held, KeyedLocks, PermanentError, PullLoop
from app.eventstore.envelope import Metadata, caused_by
from app.eventstore.jetstream import STREAM
from app.eventstore.ports import EventStore
from app.eventstore.required import require_consumer, require_streams
from app.saga import timeouts
from app.saga.census import ORCHESTRATOR_CONSUMER
from app.saga.dispatch import JetStreamDispatch
from app.saga.fulfilment import FACT_SUBJECTS, FACT_TYPES, order_id_of
from app.saga.holding import HeldTriggers
from app.saga.observe import SagaTelemetry
from app.saga.reactor import SagaReactor
from app.settings import Settings
from app.workers.commands import COMMANDS_STREAM


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


class SagaRunner:
    def __init__(self, nc: NATS, store: EventStore, settings: Settings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._store = store
        self._settings = settings
        self.reactor = SagaReactor(
            store, JetStreamDispatch(self._js), step_timeout_s=settings.saga_step_timeout_s
        )
        self.held = HeldTriggers(self.reactor.arm_for, step_timeout_s=settings.saga_step_timeout_s)

    async def require(self) -> None:
        """Check the provisioned streams and durable consumers exist (``NotProvisioned`` otherwise)."""
        await require_streams(self._js, COMMANDS_STREAM, timeouts.TIMERS_STREAM)
        await require_consumer(self._js, STREAM, ORCHESTRATOR_CONSUMER)
        await require_consumer(self._js, timeouts.TIMERS_STREAM, timeouts.TIMEOUTS_CONSUMER)

    def loops(self) -> list[PullLoop]:
        locks = KeyedLocks()
        n = self._settings.saga_concurrency
        return [
            PullLoop(
                self._nc,
                STREAM,
                ORCHESTRATOR_CONSUMER,
                self.on_event,
                n,
                _key,
                "saga-events",
                locks,
                heartbeat_s=min(2.0, self.held.threshold),
                tick=self.held.sweep,
            ),
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

    async def on_event(self, msg: Msg) -> Held | None:
        if (msg.headers or {}).get("Eda-Type") not in FACT_TYPES:
            return None  # OrderPaid, OrderShipped, stock events...: nothing for the saga
        recorded = self._store.codec.decode(msg.data, msg.metadata.sequence.stream if msg.metadata else 0)
        env = recorded.envelope
        if recorded.event is None:
            raise PermanentError(f"unknown event type {env.type}")
        order_id, meta = int(env.aggregate_id), caused_by(env)
        with SagaTelemetry.processing(msg, order_id, message_id=env.event_id, fact=env.type):
            saga = await self.reactor.on_fact(recorded)
            if saga is not None and msg.metadata is not None and msg.metadata.num_delivered > 1:
                await self.reactor.resend(saga, meta)  # a crash may have lost what the reaction sent
            return await self.held.settle(order_id, msg, saga, meta, f"held:{env.event_id}")

    async def on_timer(self, msg: Msg) -> None:
        order_id = order_id_of(msg.subject)
        h = msg.headers or {}
        cause = f"fired:{msg.metadata.sequence.stream if msg.metadata else msg.subject}"
        meta = Metadata(
            correlation_id=h.get("Eda-Correlation-Id", cause),
            causation_id=cause,
            traceparent=h.get("traceparent"),
            tracestate=h.get("tracestate"),
        )
        with SagaTelemetry.processing(msg, order_id, message_id=cause, fact="StepTimedOut"):
            await self.reactor.on_timer(order_id, msg.subject, cause, meta)


def _key(msg: Msg) -> str:
    return str(order_id_of(msg.subject))


async def saga_loops(nc: NATS, store: EventStore, settings: Settings) -> tuple[SagaRunner, list[PullLoop]]:
    runner = SagaRunner(nc, store, settings)
    await runner.require()
    return runner, runner.loops()
