"""The newest-first read of a dead-letter stream (``app.readmodel.deadletter.newest_first``) that
``GET /api/v1/admin/dead-letters``, ``eda status`` and the console's health page share: newest first, up
to the limit, passing over messages deleted (handled) since the stream info was taken."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from app.eventstore.jetstream import ensure_stream
from app.readmodel.deadletter import DLQ_PREFIX, DLQ_STREAM, dlq_stream_config, newest_first, recent


async def test_newest_first_skips_deleted_messages_and_stops_at_the_limit(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, dlq_stream_config(1))
    for n in range(1, 6):
        await js.publish(f"{DLQ_PREFIX}.c.{n}", f"m{n}".encode(), headers={"Eda-Consumer": "c"})
    await js.delete_msg(DLQ_STREAM, 4)
    info = await js.stream_info(DLQ_STREAM)

    assert [(seq, raw.data) async for seq, raw in newest_first(js, info, 3)] == [
        (5, b"m5"),
        (3, b"m3"),
        (2, b"m2"),
    ]
    assert [seq async for seq, _ in newest_first(js, info, 10)] == [5, 3, 2, 1]
    assert [seq async for seq, _ in newest_first(js, info, 0)] == []
    await js.delete_msg(DLQ_STREAM, 5)  # handled after ``info`` was taken: passed over all the same
    assert [seq async for seq, _ in newest_first(js, info, 2)] == [3, 2]

    items = await recent(js, 2)
    assert [(i["dlq_sequence"], i["consumer"], i["preview"]) for i in items] == [
        (3, "c", "m3"),
        (2, "c", "m2"),
    ]


async def test_recent_without_a_dead_letter_stream_is_empty(nc: NATS) -> None:
    js = nc.jetstream()
    if DLQ_STREAM in [s.config.name for s in await js.streams_info()]:
        await js.delete_stream(DLQ_STREAM)
    assert await recent(js) == []
