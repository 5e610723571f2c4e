"""What JetStream says about the platform's streams and consumers, as plain data: sizes and limits,
replica health, consumer backlogs. Used by ``eda status``, the console's Health page and the metrics
sampler (``app.ops.gauges``), so all three report the same numbers.

Replica health comes from the stream's cluster info: ``replicas`` is the configured count,
``replicas_current`` counts the leader plus every follower that is online and current; a stream
without a leader cannot take writes. On a single server (no cluster info) the server itself is the
leader and the only replica.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.client import JetStreamContext

DLQ_MARKERS = ("dlq", "dead")


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """One stream: size, limit (``None``: unlimited), replicas and leader."""

    name: str
    messages: int
    bytes: int
    max_bytes: int | None
    first_sequence: int
    last_sequence: int
    consumers: int
    replicas: int
    replicas_current: int
    leader: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ConsumerHealth:
    """One consumer's backlog: not yet delivered (``pending``), delivered but not acknowledged."""

    stream: str
    name: str
    durable: bool
    filter: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    last_active: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"last_active": self.last_active.isoformat() if self.last_active else None}


def is_internal(info: StreamInfo) -> bool:
    """KV buckets and object stores are streams too; they are reported separately, if at all."""
    return info.config.name is not None and info.config.name.startswith(("KV_", "OBJ_"))


def is_dead_letter(info: StreamInfo) -> bool:
    names = [info.config.name or "", *(info.config.subjects or [])]
    return any(marker in n.lower() for n in names for marker in DLQ_MARKERS)


def stream_health(info: StreamInfo) -> StreamHealth:
    cfg, state, cluster = info.config, info.state, info.cluster
    replicas = int(cfg.num_replicas or 1)
    leader: str | None
    if cluster is None:  # an old server without cluster info: itself
        leader, current = "(single server)", 1
    else:
        leader = cluster.leader or None
        followers = sum(1 for p in cluster.replicas or [] if p.current and not p.offline)
        current = (1 if leader else 0) + followers
    max_bytes = cfg.max_bytes if cfg.max_bytes is not None and cfg.max_bytes > 0 else None
    return StreamHealth(
        name=cfg.name or "",
        messages=int(state.messages),
        bytes=int(state.bytes),
        max_bytes=max_bytes,
        first_sequence=int(state.first_seq),
        last_sequence=int(state.last_seq),
        consumers=int(state.consumer_count),
        replicas=replicas,
        replicas_current=min(current, replicas),
        leader=leader,
    )


def consumer_health(stream: str, c: ConsumerInfo) -> ConsumerHealth:
    cfg = c.config
    return ConsumerHealth(
        stream=stream,
        name=c.name,
        durable=bool(cfg.durable_name),
        filter=cfg.filter_subject or ", ".join(cfg.filter_subjects or []) or ">",
        pending=int(c.num_pending or 0),
        ack_pending=int(c.num_ack_pending or 0),
        redelivered=int(c.num_redelivered or 0),
        waiting=int(c.num_waiting or 0),
        last_active=c.delivered.last_active if c.delivered else None,
    )


async def streams(js: JetStreamContext) -> list[StreamInfo]:
    """Every stream of the account (KV buckets included: filter with ``is_internal``)."""
    infos: list[StreamInfo] = await js.streams_info()
    return sorted(infos, key=lambda s: s.config.name or "")


async def consumers(js: JetStreamContext, infos: list[StreamInfo]) -> list[ConsumerHealth]:
    """The consumers of every non-internal stream; durable ones first."""
    out: list[ConsumerHealth] = []
    for info in infos:
        if is_internal(info):
            continue
        name = info.config.name or ""
        out.extend(consumer_health(name, c) for c in await js.consumers_info(name))
    out.sort(key=lambda c: (not c.durable, c.stream, c.name))
    return out
