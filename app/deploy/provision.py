"""Provisioning: create or update every JetStream asset eda uses — its streams, the ``snapshots`` KV
bucket and the durable consumers of the saga and the workers — under an identity of its own (the NATS
user ``provision``; no runtime role may create, update, delete or purge a stream).

``eda provision`` runs ``provision`` (the chart's provision Job, and ``eda dev``/``eda infra`` before
their roles start):

1. it plans first, reading what exists (``STREAM.INFO``, ``CONSUMER.INFO``) and comparing the fields eda
   sets with the wanted configuration (other fields, e.g. set by an administrator, are kept);
2. it refuses to LOWER the replica count of an existing stream or bucket (a pod or Job with a wrong
   ``EDA_STREAM_REPLICAS`` would otherwise turn R3 into R1): ``ReplicaDowngrade``, nothing changed;
3. then it creates what is missing and updates what differs, and reports each asset as created,
   updated (with the fields) or unchanged.

The projector's consumer is not provisioned: the projector places it at its own checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from app.api.ids import counters_stream_config
from app.eventstore import jsapi
from app.eventstore.jetstream import STREAM, events_stream_config
from app.eventstore.snapshots import snapshots_bucket_config
from app.readmodel.deadletter import dlq_stream_config
from app.saga.runner import orchestrator_consumer_config
from app.saga.timeouts import TIMERS_STREAM, timeouts_consumer_config, timers_stream_config
from app.workers.base import worker_consumer_config
from app.workers.commands import COMMANDS_STREAM, WORKERS, commands_stream_config
from app.workers.paid_orders import paid_orders_consumer_config

Action = Literal["created", "updated", "unchanged"]
Kind = Literal["stream", "bucket", "consumer"]
KV_PREFIX = "KV_"


class ProvisionError(RuntimeError):
    """The assets could not be provisioned as wanted; nothing was changed when raised by the plan."""


class ReplicaDowngrade(ProvisionError):
    """A run would lower the replica count of an existing stream or bucket."""


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every asset eda needs, at ``replicas`` replicas."""

    streams: tuple[StreamConfig, ...]
    buckets: tuple[KeyValueConfig, ...]
    consumers: tuple[tuple[str, ConsumerConfig], ...]  # (stream, durable config)

    def stream_names(self) -> list[str]:
        """The streams, the buckets' streams (``KV_<bucket>``) included."""
        return [str(s.name) for s in self.streams] + [KV_PREFIX + b.bucket for b in self.buckets]


def catalogue(replicas: int) -> Catalogue:
    """What eda runs on: streams ``EVENTS``, ``COMMANDS``, ``SAGA_TIMERS``, ``COUNTERS``, ``DLQ``; the
    ``snapshots`` bucket; the saga's and the workers' durable consumers (the shipping worker's two)."""
    return Catalogue(
        streams=(
            events_stream_config(replicas),
            commands_stream_config(replicas),
            timers_stream_config(replicas),
            counters_stream_config(replicas),
            dlq_stream_config(replicas),
        ),
        buckets=(snapshots_bucket_config(replicas),),
        consumers=(
            (STREAM, orchestrator_consumer_config()),
            (TIMERS_STREAM, timeouts_consumer_config()),
            *((COMMANDS_STREAM, worker_consumer_config(w)) for w in WORKERS),
            (STREAM, paid_orders_consumer_config()),
        ),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run did to one asset."""

    kind: Kind
    name: str
    action: Action
    fields: tuple[str, ...] = ()  # the fields an update changed

    def __str__(self) -> str:
        changed = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action} {self.kind} {self.name}{changed}"


def _normal(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float):
        return round(value, 6)  # durations travel as nanoseconds
    return value


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def differences(wanted: Any, existing: Any) -> tuple[str, ...]:
    """The fields ``wanted`` (a nats-py config) sets — those not at their default — whose value
    ``existing`` does not have."""
    out = []
    for f in dataclasses.fields(wanted):
        value = getattr(wanted, f.name)
        if value is None or _normal(value) == _normal(_default(f)):
            continue
        if _normal(value) != _normal(getattr(existing, f.name, None)):
            out.append(f.name)
    return tuple(out)


def _bucket_as_stream(bucket: KeyValueConfig) -> StreamConfig:
    """The fields of a bucket's stream that the bucket config decides (nats-py builds the rest)."""
    return StreamConfig(
        name=KV_PREFIX + bucket.bucket,
        num_replicas=bucket.replicas,
        max_msgs_per_subject=bucket.history,
        storage=bucket.storage,
        allow_direct=bucket.direct,
    )


@contextlib.contextmanager
def _refused(what: str) -> Iterator[None]:
    """A JetStream error other than "not now" (no leader, too few peers) becomes a ``ProvisionError``:
    e.g. a change the server does not allow on an existing stream (retention, storage, ...)."""
    try:
        yield
    except APIError as exc:
        if exc.err_code in jsapi.TRANSIENT_API_ERRORS:
            raise
        raise ProvisionError(
            f"{what} refused by the server: {exc.description} (code {exc.err_code})"
        ) from exc


async def _stream_info(js: JetStreamContext, name: str) -> StreamInfo | None:
    try:
        return await js.stream_info(name)
    except NotFoundError:
        return None


async def check_replicas(js: JetStreamContext, wanted: Sequence[StreamConfig]) -> None:
    """``ReplicaDowngrade`` naming every existing stream whose replicas ``wanted`` would lower."""
    lowered = []
    for config in wanted:
        info = await _stream_info(js, str(config.name))
        have, want = (info.config.num_replicas or 1) if info else 0, config.num_replicas or 1
        if info is not None and want < have:
            lowered.append(f"{config.name} R{have} -> R{want}")
    if lowered:
        raise ReplicaDowngrade(
            f"refusing to lower the replicas of {', '.join(lowered)}: run with --replicas (or "
            "EDA_STREAM_REPLICAS) at least the current count; lowering replicas drops copies of every "
            "stored event and is an administrator's decision (`nats stream edit <name> --replicas N`)"
        )


async def _stream(
    js: JetStreamContext, kind: Kind, name: str, wanted: StreamConfig, create: Callable[[], Awaitable[Any]]
) -> Outcome:
    """Create the stream (``create``), or update the fields of ``wanted`` it lacks."""
    info = await _stream_info(js, str(wanted.name))
    if info is None:
        with _refused(f"creating {kind} {name}"):
            await create()
        return Outcome(kind, name, "created")
    changed = differences(wanted, info.config)
    if changed:
        with _refused(f"updating {kind} {name} ({', '.join(changed)})"):
            await js.update_stream(info.config.evolve(**{f: getattr(wanted, f) for f in changed}))
    return Outcome(kind, name, "updated" if changed else "unchanged", changed)


START_FIELDS = frozenset({"deliver_policy", "opt_start_seq", "opt_start_time"})
"""Where a consumer starts: chosen when it is created, never updated (the server refuses to; a restore
from the mirror recreates consumers ``by_start_sequence`` at their backed-up positions)."""


async def _consumer(js: JetStreamContext, stream: str, wanted: ConsumerConfig) -> Outcome:
    name = f"{stream}/{wanted.durable_name}"
    try:
        info = await js.consumer_info(stream, str(wanted.durable_name))
    except NotFoundError:
        with _refused(f"creating consumer {name}"):
            await js.add_consumer(stream, wanted)
        return Outcome("consumer", name, "created")
    changed = tuple(f for f in differences(wanted, info.config) if f not in START_FIELDS)
    if changed:
        with _refused(f"updating consumer {name} ({', '.join(changed)})"):
            await js.add_consumer(stream, wanted)  # create-or-update: the server applies what may change
    return Outcome("consumer", name, "updated" if changed else "unchanged", changed)


async def provision(
    nc: NATS, replicas: int, report: Callable[[Outcome], None] = lambda _: None
) -> list[Outcome]:
    """Create or update every asset of ``catalogue(replicas)``; ``ReplicaDowngrade`` (before any
    change) if that would lower an existing stream's replicas. Idempotent."""
    wanted = catalogue(replicas)
    js = nc.jetstream(timeout=10.0)
    await check_replicas(js, [*wanted.streams, *map(_bucket_as_stream, wanted.buckets)])
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        report(outcome)

    for stream in wanted.streams:
        done(await _stream(js, "stream", str(stream.name), stream, functools.partial(js.add_stream, stream)))
    for bucket in wanted.buckets:
        as_stream = _bucket_as_stream(bucket)
        create = functools.partial(js.create_key_value, bucket)
        done(await _stream(js, "bucket", bucket.bucket, as_stream, create))
    for stream_name, consumer in wanted.consumers:
        done(await _consumer(js, stream_name, consumer))
    return outcomes
