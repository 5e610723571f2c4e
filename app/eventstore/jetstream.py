"""The event store on NATS JetStream: stream ``EVENTS``, one subject per aggregate.

- Optimistic concurrency: ``Nats-Expected-Last-Subject-Sequence`` on the first message of an append.
- Atomicity: the events of one command go in one atomic batch (ADR-50), all stored or none.
- Idempotency: ``Nats-Msg-Id`` = event id; a retried append whose events are already stored (found
  right after the expected sequence) reports success instead of a conflict, even outside the
  server's duplicate window.
- Reads: batched Direct Get (no consumer per load), any replica may answer.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from app.domain.registry import all_event_types
from app.eventstore import jsapi
from app.eventstore.bulkread import BulkReader
from app.eventstore.codec import EventCodec, message_headers
from app.eventstore.directget import DirectGetter
from app.eventstore.envelope import (
    SUBJECT_PREFIX,
    Metadata,
    Position,
    RawMessage,
    StreamId,
)
from app.eventstore.ports import (
    MAX_BATCH,
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    EventStore,
    EventStoreBase,
    EventStoreError,
    LoadedStream,
)
from app.eventstore.required import require_stream
from app.settings import Settings
from app.telemetry import current_traceparent, mark_error, meter, note_appended, producer_span

log = logging.getLogger(__name__)

STREAM = "EVENTS"
BULK_THRESHOLD = 2000  # reads at least this large use the lean bulk connection
LOAD_PAGE = 1000  # first page of an aggregate's load (below BULK_THRESHOLD: plain direct get)


def events_stream_config(replicas: int) -> StreamConfig:
    """The ``EVENTS`` stream: file storage, kept forever, direct reads, atomic batches, 2 min dedupe."""
    return StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.NEW,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        num_replicas=replicas,
        duplicate_window=120.0,
        allow_direct=True,
        allow_atomic=True,
        deny_delete=True,
        deny_purge=True,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it to ``config`` if it exists. For administrator tools that run with
    the rights to (``eda restore``, the backup mirror); roles never call it: they only check that what
    ``eda provision`` created exists (``app.eventstore.required``)."""
    try:
        await js.add_stream(config)
    except APIError as exc:
        if exc.err_code != jsapi.STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)


async def open_event_store(nc: NATS, settings: Settings, *, require: bool = True) -> EventStore:
    """The event store of every process, as its composition root asks for it: JetStream, every event
    type of the domain known, on the stream ``EVENTS`` that ``eda provision`` created — checked, never
    created or updated (``NotProvisioned`` while it does not exist; ``require=False`` for read-only
    tools that report its absence themselves)."""
    codec = EventCodec(all_event_types())
    if not require:
        return JetStreamEventStore(nc, codec)
    return await JetStreamEventStore.open(nc, codec)


class JetStreamEventStore(EventStoreBase):
    """``EventStore`` on one JetStream stream. Create with ``await JetStreamEventStore.open(...)``."""

    def __init__(
        self, nc: NATS, codec: EventCodec, *, timeout: float = 5.0, attempts: int = 4, retry_for: float = 15.0
    ) -> None:
        self._nc = nc
        self._attempts = attempts
        self._retry_for = retry_for
        self._js = nc.jetstream(timeout=timeout)
        self._codec = codec
        self._timeout = timeout
        self._getter = DirectGetter(nc, STREAM, timeout=timeout)
        self._bulk: BulkReader | None = None
        self._bulk_enabled = True
        self._append_seconds = meter().create_histogram(
            "eda.eventstore.append.duration", unit="s", description="Latency of event-store appends"
        )
        self._appended = meter().create_counter(
            "eda.events.appended", unit="{event}", description="Events appended to the event store"
        )

    @classmethod
    async def open(
        cls,
        nc: NATS,
        codec: EventCodec,
        *,
        timeout: float = 5.0,
        retry_for: float = 15.0,
    ) -> JetStreamEventStore:
        """The store on the provisioned stream ``EVENTS`` (``NotProvisioned`` while it does not exist)."""
        store = cls(nc, codec, timeout=timeout, retry_for=retry_for)
        await require_stream(store._js, STREAM)
        return store

    @property
    def codec(self) -> EventCodec:
        return self._codec

    async def close(self) -> None:
        await self._getter.close()
        if self._bulk is not None:
            await self._bulk.close()

    # -- writing -------------------------------------------------------------------------------

    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]:
        """Append to several streams in ONE atomic batch: every stream's expected position is checked
        and either all events of all streams are stored or none (e.g. reserving several products).

        Runs in a ``send`` PRODUCER span whose context becomes the events' ``traceparent`` (so every
        consumer continues the caller's trace); without an active tracer the caller's is kept."""
        requests = [r for r in requests if r.events]
        if not requests:
            return []
        first = requests[0]
        types = [type(new.event).TYPE for r in requests for new in r.events]
        with producer_span(
            first.stream.subject,
            message_id=first.events[0].event_id,
            order_id=getattr(first.events[0].event, "order_id", None),
            batch_size=len(types),
            attributes={"eda.event.types": types},
        ) as span:
            traceparent, tracestate = current_traceparent()
            if traceparent:
                meta = dataclasses.replace(meta, traceparent=traceparent, tracestate=tracestate)
            try:
                results = await self._append_multi(requests, meta)
            except ConcurrencyError as exc:
                mark_error(span, exc)
                raise
        note_appended(types)
        return results

    async def _append_multi(self, requests: list[AppendRequest], meta: Metadata) -> list[AppendResult]:
        subjects: list[str] = []
        payloads: list[bytes] = []
        headers: list[dict[str, str]] = []
        for req in requests:
            for i, new in enumerate(req.events):
                env = self._codec.envelope(req.stream, req.expected.version + i + 1, new, meta)
                subjects.append(req.stream.subject)
                payloads.append(self._codec.encode(env))
                hdrs = message_headers(new, meta)
                if i == 0:
                    hdrs["Nats-Expected-Last-Subject-Sequence"] = str(req.expected.sequence)
                headers.append(hdrs)
        if len(payloads) > MAX_BATCH:
            raise EventStoreError(f"at most {MAX_BATCH} events per append")
        started = time.perf_counter()
        try:
            ack = await self._publish_with_retry(subjects, payloads, headers)
        except APIError as exc:
            if exc.err_code in (jsapi.WRONG_LAST_SEQUENCE, jsapi.BATCH_DUPLICATE_MSG_ID):
                return await self._resolve_conflict(requests, exc)
            raise EventStoreError(f"append to {requests[0].stream} rejected: {exc.description}") from exc
        finally:
            self._append_seconds.record(time.perf_counter() - started)
        if ack.get("duplicate"):
            return await self._resolve_conflict(requests, None)
        for req in requests:
            self._appended.add(len(req.events), {"aggregate_type": req.stream.aggregate_type})
        seq = int(ack["seq"]) - len(payloads) + 1  # a batch is stored contiguously
        results = []
        for req in requests:
            n = len(req.events)
            results.append(
                AppendResult(position=Position(req.expected.version + n, seq + n - 1), first_sequence=seq)
            )
            seq += n
        return results

    async def _publish_with_retry(
        self, subjects: list[str], payloads: list[bytes], headers: list[dict[str, str]]
    ) -> dict[str, Any]:
        """Publish; on a lost acknowledgement (timeout) or a cluster that cannot take it right now (no
        responders or "unavailable" while a stream leader is elected) send the very same messages
        again: the same ``Nats-Msg-Id``s make the retry safe. Gives up after ``attempts`` timeouts or
        ``retry_for`` seconds, raising ``EventStoreError`` (never a raw NATS error)."""
        deadline = time.monotonic() + self._retry_for
        timeouts = 0
        attempt = 0
        while True:
            try:
                if len(payloads) == 1:
                    return await self._publish_one(subjects[0], payloads[0], dict(headers[0]))
                return await self._publish_batch(subjects, payloads, [dict(h) for h in headers])
            except APIError as exc:
                if not _transient(exc):
                    raise
                failure: Exception = exc
            except EventStoreError as exc:  # a timeout: the append may or may not have been stored
                timeouts += 1
                failure = exc
            except NoRespondersError as exc:
                failure = exc
            except NatsError as exc:
                raise EventStoreError(f"append to {subjects[0]} failed: {exc!r}") from exc
            delay = min(0.05 * 2**attempt, 1.0)
            attempt += 1
            if timeouts >= self._attempts or time.monotonic() + delay > deadline:
                raise EventStoreError(
                    f"append to {subjects[0]} not acknowledged after {attempt} attempts: {failure!r}"
                ) from failure
            await asyncio.sleep(delay)

    async def _publish_one(self, subject: str, payload: bytes, headers: dict[str, str]) -> dict[str, Any]:
        try:
            msg = await self._nc.request(subject, payload, headers=headers, timeout=self._timeout)
        except TimeoutError as exc:
            raise EventStoreError(f"no acknowledgement for {subject} (timeout)") from exc
        return _ack(msg.data)

    async def _publish_batch(
        self, subjects: list[str], payloads: list[bytes], headers: list[dict[str, str]]
    ) -> dict[str, Any]:
        batch_id = uuid.uuid4().hex
        last = len(payloads)
        for i, hdrs in enumerate(headers, start=1):
            hdrs["Nats-Batch-Id"] = batch_id
            hdrs["Nats-Batch-Sequence"] = str(i)
        for i in range(last - 1):
            await self._nc.publish(subjects[i], payloads[i], headers=headers[i])
        headers[-1]["Nats-Batch-Commit"] = "1"
        try:
            msg = await self._nc.request(
                subjects[-1], payloads[-1], headers=headers[-1], timeout=self._timeout
            )
        except TimeoutError as exc:
            raise EventStoreError(f"no acknowledgement for batch on {subjects[-1]} (timeout)") from exc
        return _ack(msg.data)

    async def _resolve_conflict(
        self, requests: Sequence[AppendRequest], exc: APIError | None
    ) -> list[AppendResult]:
        """Was it our own earlier attempt? Then each stream's events follow its expected position."""
        results = []
        for req in requests:
            n = len(req.events)
            stored = await self._leader_read(req.stream.subject, req.expected.sequence + 1, n)
            if [event_id for _, event_id in stored] != [new.event_id for new in req.events]:
                detail = exc.description if exc is not None and exc.description else "stream moved"
                raise ConcurrencyError(req.stream, req.expected, detail)
            results.append(
                AppendResult(
                    position=Position(req.expected.version + n, stored[-1][0]),
                    first_sequence=stored[0][0],
                    duplicate=True,
                )
            )
        return results

    async def _leader_read(self, subject: str, from_sequence: int, n: int) -> list[tuple[int, str]]:
        """(sequence, event id) of up to ``n`` messages of ``subject`` from ``from_sequence``, read from
        the stream LEADER (``$JS.API.STREAM.MSG.GET``). Direct Get may be answered by a replica that
        is still catching up (seen after a leader change): it would miss our own just-stored append
        and turn a success into a false ``ConcurrencyError``."""
        out: list[tuple[int, str]] = []
        seq = from_sequence
        for _ in range(n):
            request = jsapi.next_by_subject_request(seq, subject)
            try:
                msg = await self._nc.request(
                    jsapi.stream_msg_get_subject(STREAM), request, timeout=self._timeout
                )
            except (TimeoutError, NatsError) as exc:
                raise EventStoreError(f"reading {subject} from the leader failed: {exc!r}") from exc
            doc = orjson.loads(msg.data)
            stored = doc.get("message")
            if stored is None:
                if (doc.get("error") or {}).get("code") == 404:
                    break
                raise EventStoreError(f"reading {subject} from the leader failed: {doc.get('error')}")
            event_id = self._codec.decode_envelope(base64.b64decode(stored["data"])).event_id
            out.append((int(stored["seq"]), event_id))
            seq = int(stored["seq"]) + 1
        return out

    # -- reading -------------------------------------------------------------------------------

    async def load(self, stream: StreamId, after: Position | None = None) -> LoadedStream:
        """Events of ``stream`` after ``after`` (default: all), and the position after the last."""
        start = after or Position(0, 0)
        # The first page through nats-py (one round trip answers almost every aggregate); a long stream
        # continues through the bulk reader, several times faster per event.
        raw = await self.read_raw(start.sequence + 1, limit=LOAD_PAGE, subjects=stream.subject)
        if len(raw) == LOAD_PAGE:
            raw += await self.read_raw(raw[-1].sequence + 1, limit=2**62, subjects=stream.subject)
        return LoadedStream.after(start, self._codec.decode_all(raw))

    async def read_raw(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RawMessage]:
        """Like ``read_all`` but undecoded (for rebuilds that decode in bulk). Large reads go through
        the lean ``BulkReader`` connection (several times faster); small ones, or when it is not
        available, through nats-py's direct get."""
        out: list[RawMessage] = []
        bulk = self._bulk_reader() if limit >= BULK_THRESHOLD else None
        if bulk is not None:
            try:
                async for batch in bulk.batches(subjects, from_sequence, batch=min(limit, 5000), limit=limit):
                    out.extend(batch)
                return out
            except (OSError, TimeoutError, EventStoreError) as exc:
                log.warning("bulk read failed (%s); falling back to direct get", exc)
                from_sequence = out[-1].sequence + 1 if out else from_sequence
                limit -= len(out)
        async for batch in self._getter.batches(subjects, from_sequence, batch=min(limit, 1000), limit=limit):
            out.extend(batch)
        return out

    def _bulk_reader(self) -> BulkReader | None:
        if self._bulk is None and self._bulk_enabled:
            self._bulk = BulkReader.from_client(self._nc, STREAM)
            self._bulk_enabled = self._bulk is not None
        return self._bulk

    async def last_sequence(self) -> int:
        """The stream's last sequence (0 when empty)."""
        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError:
            return 0
        return int(info.state.last_seq)


def _transient(exc: APIError) -> bool:
    return exc.err_code in jsapi.TRANSIENT_APPEND_ERRORS or exc.code == 503


def _ack(data: bytes) -> dict[str, Any]:
    ack: dict[str, Any] = orjson.loads(data)
    error = ack.get("error")
    if error:
        raise APIError(
            code=error.get("code"), err_code=error.get("err_code"), description=error.get("description")
        )
    return ack
