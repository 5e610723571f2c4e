"""The ``COUNTERS`` stream: JetStream message counters (``allow_msg_counter``), one subject per counter,
only the latest value kept. ``counters.order_id`` hands out order ids (``app.api.ids``); a backup restore
raises it above every restored id (``app.backup.continuity``), so both spell the layout from here."""

from __future__ import annotations

from nats.js.api import StorageType, StreamConfig

STREAM = "COUNTERS"
ORDER_ID_SUBJECT = "counters.order_id"


def counters_stream_config(replicas: int) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=["counters.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_msg_counter=True,
        max_msgs_per_subject=1,
        allow_direct=True,
    )
