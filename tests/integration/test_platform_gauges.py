"""The platform gauges (``app.ops.gauges``) sampled from a real nats-server and read back from
``/metrics`` as Prometheus sees them: stream sizes and limits, replicas and leader, consumer backlogs,
sagas in flight and overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import ensure_stream
from app.ops.gauges import PlatformGauges
from app.saga import timeouts
from app.telemetry import configure_telemetry


def _scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))): s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in family.samples
        if s.name.startswith(("eda_jetstream_", "eda_sagas_"))
    }


async def test_gauges_match_jetstream(nc: NATS) -> None:
    configure_telemetry("eda-test", asyncpg=False)  # once per process: bridges OTel metrics to Prometheus
    js = nc.jetstream()
    await ensure_stream(js, StreamConfig(name="LIMITED", subjects=["limited.>"], max_bytes=1 << 20))
    for i in range(5):
        await js.publish("limited.x", b"x" * 100, headers={"Nats-Msg-Id": f"m{i}"})
    await js.add_consumer("LIMITED", durable_name="reader", filter_subject="limited.>")
    # SAGA_TIMERS and its consumer: provisioned (js_clean), as `eda provision` makes them
    later = datetime.now(UTC) + timedelta(minutes=5)
    await timeouts.arm(js, 7, later, "t", Metadata(correlation_id="c"))
    await js.publish("timeouts.saga.8.due", b"", headers={"Nats-Msg-Id": "fired-8"})

    gauges = PlatformGauges(nc)
    await gauges.sample_streams()
    await gauges.sample_sagas()
    got = _scrape()
    info = await js.stream_info("LIMITED")
    stream = (("stream", "LIMITED"),)
    assert got[("eda_jetstream_stream_messages", stream)] == 5
    assert got[("eda_jetstream_stream_bytes", stream)] == info.state.bytes > 500
    assert got[("eda_jetstream_stream_limit_bytes", stream)] == 1 << 20
    assert got[("eda_jetstream_stream_replicas", stream)] == 1
    assert got[("eda_jetstream_stream_replicas_current", stream)] == 1
    assert got[("eda_jetstream_stream_leader", stream)] == 1
    assert got[("eda_jetstream_stream_limit_bytes", (("stream", timeouts.TIMERS_STREAM),))] == -1
    consumer = (("consumer", "reader"), ("stream", "LIMITED"))
    assert got[("eda_jetstream_consumer_pending", consumer)] == 5
    assert got[("eda_jetstream_consumer_ack_pending", consumer)] == 0
    account = await js.account_info()
    assert got[("eda_jetstream_account_storage_bytes", ())] == account.storage
    assert got[("eda_jetstream_account_storage_limit_bytes", ())] == account.limits.max_storage
    assert got[("eda_sagas_in_flight", ())] == 2
    assert got[("eda_sagas_overdue", ())] == 0  # fired a moment ago: within the grace period
