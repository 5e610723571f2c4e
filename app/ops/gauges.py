"""The platform's health as Prometheus gauges, sampled every ``SAMPLE_EVERY_S`` by the projector role
(the one role that also reports projection lag; a saga role that is down must not silence the alert on
its own overdue sagas). Sampled from NATS alone, like the projection lag:

- per stream (label ``stream``): ``eda_jetstream_stream_messages``, ``eda_jetstream_stream_bytes``,
  ``eda_jetstream_stream_limit_bytes`` (``max_bytes``; -1 unlimited), ``eda_jetstream_stream_replicas``
  (configured), ``eda_jetstream_stream_replicas_current`` (leader + current followers),
  ``eda_jetstream_stream_leader`` (1 when the stream has a leader);
- per consumer (labels ``stream``, ``consumer``): ``eda_jetstream_consumer_pending``,
  ``eda_jetstream_consumer_ack_pending``;
- the account: ``eda_jetstream_account_storage_bytes`` and ``eda_jetstream_account_storage_limit_bytes``
  (-1 unlimited: then the servers' ``max_file_store`` is the limit, see docs/observability.md);
- sagas (``app.saga.census``): ``eda_sagas_in_flight``, ``eda_sagas_overdue`` and
  ``eda_sagas_overdue_seconds`` (how far past due the oldest overdue one is).

Several projector replicas export the same values; the alert rules take ``max``.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS

from app.ops import jetstream
from app.saga import census
from app.telemetry import meter

log = logging.getLogger(__name__)
SAMPLE_EVERY_S = 15.0


class PlatformGauges:
    """The gauges and the loop that keeps them current."""

    def __init__(self, nc: NATS) -> None:
        self._js = nc.jetstream(timeout=5.0)
        m = meter()
        gauge = m.create_gauge
        self._stream = {
            "messages": gauge("eda.jetstream.stream.messages", unit="{message}", description="Messages"),
            "bytes": gauge("eda.jetstream.stream.bytes", unit="By", description="Bytes stored"),
            "limit": gauge("eda.jetstream.stream.limit", unit="By", description="max_bytes (-1: none)"),
            "replicas": gauge("eda.jetstream.stream.replicas", description="Configured replicas"),
            "current": gauge(
                "eda.jetstream.stream.replicas.current", description="Leader plus current followers"
            ),
            "leader": gauge("eda.jetstream.stream.leader", description="1 when the stream has a leader"),
        }
        self._pending = gauge("eda.jetstream.consumer.pending", description="Messages not yet delivered")
        self._ack_pending = gauge(
            "eda.jetstream.consumer.ack_pending", description="Messages delivered, not yet acknowledged"
        )
        self._storage = gauge("eda.jetstream.account.storage", unit="By", description="File storage used")
        self._storage_limit = gauge(
            "eda.jetstream.account.storage.limit", unit="By", description="Account max storage (-1: none)"
        )
        self._in_flight = gauge("eda.sagas.in_flight", description="Sagas with a running step")
        self._overdue = gauge("eda.sagas.overdue", description="Sagas running past their timeout")
        self._overdue_s = gauge(
            "eda.sagas.overdue.seconds", unit="s", description="How far past due the oldest overdue saga is"
        )

    async def sample_streams(self) -> None:
        infos = await jetstream.streams(self._js)
        for info in infos:
            h = jetstream.stream_health(info)
            attrs = {"stream": h.name}
            for key, value in (
                ("messages", h.messages),
                ("bytes", h.bytes),
                ("limit", h.max_bytes if h.max_bytes is not None else -1),
                ("replicas", h.replicas),
                ("current", h.replicas_current),
                ("leader", 1 if h.leader else 0),
            ):
                self._stream[key].set(value, attrs)
        for c in await jetstream.consumers(self._js, infos):
            if not c.durable:  # ephemeral consumers (readers, scans) come and go: no series for them
                continue
            attrs = {"stream": c.stream, "consumer": c.name}
            self._pending.set(c.pending, attrs)
            self._ack_pending.set(c.ack_pending, attrs)
        account = await self._js.account_info()
        self._storage.set(account.storage)
        self._storage_limit.set(account.limits.max_storage)

    async def sample_sagas(self) -> None:
        taken = await census.take(self._js)
        self._in_flight.set(taken.in_flight_count())
        self._overdue.set(len({t.order_id for t in taken.overdue()}))
        self._overdue_s.set(taken.overdue_seconds())

    async def run(self, every: float = SAMPLE_EVERY_S) -> None:
        """Sample until cancelled (a failed sample is logged, never fatal)."""
        while True:
            for sample in (self.sample_streams, self.sample_sagas):
                try:
                    await sample()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("platform sample %s failed: %r", sample.__name__, exc)
            await asyncio.sleep(every)
