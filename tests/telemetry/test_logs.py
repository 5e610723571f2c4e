"""Structured logs: one JSON object per line with level and logger, ``trace_id``/``span_id`` inside a
span, the level from ``EDA_LOG_LEVEL``, credentials in URLs masked. Run in a child process (logging
configuration is process-global)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import logging
from app.settings import Settings
from app.telemetry import configure_logging, configure_telemetry, producer_span
configure_logging(Settings().log_level)
configure_telemetry("eda-test")
log = logging.getLogger("eda.test")
log.info("hidden at WARNING")
with producer_span("events.order.7", order_id=7):
    log.warning("connecting to %s", "postgresql://eda:s3cret@db:5432/eda")
log.error("outside")
"""


def test_json_logs_with_trace_ids_level_and_masked_secrets() -> None:
    env = dict(os.environ) | {"EDA_LOG_LEVEL": "WARNING"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == [
        "connecting to postgresql://eda:***@db:5432/eda",
        "outside",
    ]
    inside, outside = lines
    assert inside["level"] == "warning"
    assert inside["logger"] == "eda.test"
    assert len(inside["trace_id"]) == 32
    assert len(inside["span_id"]) == 16
    assert "trace_id" not in outside
    assert "s3cret" not in out.stderr
