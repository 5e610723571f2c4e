"""What a role checks at start-up: the streams, KV buckets and durable consumers it uses exist.

Roles never create, update or delete JetStream assets: ``eda provision`` (a Helm hook Job in the chart,
``eda dev``/``eda infra`` locally) does, under an identity of its own, so a role with a wrong
``EDA_STREAM_REPLICAS`` or a compromised API pod cannot reconfigure a stream. A role only asks
``STREAM.INFO``/``CONSUMER.INFO``; a missing asset raises ``NotProvisioned``, which the role start-up
(``app.process.role.retry_start``) treats as "not yet": it logs the message below and retries.
"""

from __future__ import annotations

from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from app.eventstore.ports import EventStoreError

HINT = "run `eda provision` (in Kubernetes: the chart's provision Job)"


class NotProvisioned(EventStoreError):
    """A stream, bucket or durable consumer a role needs does not exist (yet)."""


async def require_stream(js: JetStreamContext, name: str) -> StreamInfo:
    """The stream's info; ``NotProvisioned`` if it does not exist."""
    try:
        return await js.stream_info(name)
    except NotFoundError as exc:
        raise NotProvisioned(f"stream {name} does not exist: {HINT}") from exc


async def require_streams(js: JetStreamContext, *names: str) -> None:
    for name in names:
        await require_stream(js, name)


async def require_consumer(js: JetStreamContext, stream: str, durable: str) -> ConsumerInfo:
    """The durable consumer's info; ``NotProvisioned`` if it (or its stream) does not exist."""
    try:
        info: ConsumerInfo = await js.consumer_info(stream, durable)
    except NotFoundError as exc:
        raise NotProvisioned(f"consumer {durable} of stream {stream} does not exist: {HINT}") from exc
    return info
