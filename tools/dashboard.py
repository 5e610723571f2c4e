"""The Grafana dashboard of the platform, generated from code with Grafana's own
grafana-foundation-sdk (its builders and models are generated from Grafana's dashboard schema, so a
panel, a query or a unit the schema does not know does not type-check).

``.venv/bin/python tools/dashboard.py`` writes ``helm/eda/files/dashboards/eda.json``, which the
chart ships as a ConfigMap for the Grafana sidecar (``monitoring.dashboards.enabled``); ``--check`` fails when
the checked-in file differs from what this code generates (tests/deploy/test_dashboard.py does the
same). ``PANELS`` describes the panels (titles, queries, legends, units); the screenshot renderer
(``tools/render_dashboard.py``) reads the generated ``eda.json``, so it draws what the chart ships.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef, VariableRefresh

OUT = Path(__file__).resolve().parents[1] / "helm" / "eda" / "files" / "dashboards" / "eda.json"
UID = "eda-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace=~"$namespace"'  # matches series without the label too (`eda dev`)
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its row, title, unit, queries; ``stat`` for a single number."""

    row: str
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    stat: bool = False
    width: int = 8


def _quantile(q: float, histogram: str, by: str, match: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({histogram}_bucket{{{{NS}}{match}}}[RATE])))"


def _q(expr: str, legend: str) -> Query:
    return Query(expr.replace("{NS}", NS).replace("[RATE]", f"[{RATE}]"), legend)


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "API",
        "Requests by status",
        "reqps",
        (_q("sum by (status) (rate(eda_http_requests_total{{NS}}[RATE]))", "{{status}}"),),
        "HTTP requests answered per second (probes and scrapes not counted)",
    ),
    PanelSpec(
        "API",
        "Request latency",
        "s",
        (
            _q(
                _quantile(0.5, "eda_http_request_duration_seconds", "le"),
                "p50",
            ),
            _q(
                _quantile(0.99, "eda_http_request_duration_seconds", "le"),
                "p99",
            ),
        ),
        "Until the response is complete",
    ),
    PanelSpec(
        "API",
        "Orders created",
        "ops",
        (_q('sum by (outcome) (rate(eda_commands_total{{NS},command="CreateOrder"}[RATE]))', "{{outcome}}"),),
        "CreateOrder commands per second by outcome (replayed: a repeated Idempotency-Key)",
    ),
    PanelSpec(
        "Sagas",
        "Saga outcomes",
        "ops",
        (_q("sum by (outcome) (rate(eda_saga_outcomes_total{{NS}}[RATE]))", "{{outcome}}"),),
        "Sagas finished per second: completed, or cancelled after compensation",
    ),
    PanelSpec(
        "Sagas",
        "Saga step duration (p95)",
        "s",
        (
            _q(
                _quantile(0.95, "eda_saga_step_duration_seconds", "le, step", ',status="succeeded"'),
                "{{step}}",
            ),
        ),
        "From the step's command to its answer",
    ),
    PanelSpec(
        "Sagas",
        "Saga steps by status",
        "ops",
        (
            _q(
                "sum by (step, status) (rate(eda_saga_step_duration_seconds_count{{NS}}[RATE]))",
                "{{step}} {{status}}",
            ),
        ),
        "Steps finished per second: succeeded, failed, timed_out",
    ),
    PanelSpec(
        "Sagas",
        "Sagas in flight",
        "short",
        (
            _q("max(eda_sagas_in_flight{{NS}})", "in flight"),
            _q("max(eda_sagas_overdue{{NS}})", "overdue"),
        ),
        "Sagas with a running step, and those past their timeout (the timer index)",
    ),
    PanelSpec(
        "Sagas",
        "Worker commands",
        "ops",
        (
            _q(
                "sum by (worker, outcome) (rate(eda_worker_commands_total{{NS}}[RATE]))",
                "{{worker}} {{outcome}}",
            ),
        ),
        "Commands handled per second by worker and outcome",
    ),
    PanelSpec(
        "Sagas",
        "Consumer retries",
        "ops",
        (_q("sum by (consumer) (rate(eda_consumer_retries_total{{NS}}[RATE]))", "{{consumer}}"),),
        "Deliveries sent back for a retry",
    ),
    PanelSpec(
        "Read model",
        "Projection lag (events)",
        "short",
        (_q("max by (projection) (eda_projection_lag_events{{NS}})", "{{projection}}"),),
        "Events not yet applied to the read model",
    ),
    PanelSpec(
        "Read model",
        "Projection lag (seconds)",
        "s",
        (_q("max by (projection) (eda_projection_lag_seconds{{NS}})", "{{projection}}"),),
        "Age of the oldest event not yet applied",
    ),
    PanelSpec(
        "Read model",
        "Dead letters",
        "short",
        (_q('max(eda_jetstream_stream_messages{{NS},stream="DLQ"})', "DLQ"),),
        "Messages parked in the DLQ stream",
        stat=True,
    ),
    PanelSpec(
        "JetStream",
        "Stream storage",
        "bytes",
        (_q("max by (stream) (eda_jetstream_stream_bytes{{NS}})", "{{stream}}"),),
        "Bytes stored per stream (EVENTS keeps every event)",
    ),
    PanelSpec(
        "JetStream",
        "Consumer backlog",
        "short",
        (
            _q(
                "max by (consumer) (eda_jetstream_consumer_pending{{NS}}"
                " + eda_jetstream_consumer_ack_pending{{NS}})",
                "{{consumer}}",
            ),
        ),
        "Messages not yet delivered or not yet acknowledged",
    ),
    PanelSpec(
        "JetStream",
        "Stream replicas current",
        "short",
        (_q("max by (stream) (eda_jetstream_stream_replicas_current{{NS}})", "{{stream}}"),),
        "Leader plus current followers (configured: eda_jetstream_stream_replicas)",
    ),
)


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(DATASOURCE)
    )


def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel | stat.Panel:
    panel: timeseries.Panel | stat.Panel = stat.Panel() if spec.stat else timeseries.Panel()
    panel.id(panel_id).title(spec.title).description(spec.description).unit(spec.unit).datasource(DATASOURCE)
    panel.height(8).span(spec.width)
    for i, query in enumerate(spec.queries):
        panel.with_target(_target(query, chr(ord("A") + i)))
    if isinstance(panel, timeseries.Panel):
        legend = (
            common.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
        )
        panel.legend(legend.show_legend(True)).line_width(1).fill_opacity(10)
    return panel


def build() -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("eda — event-sourced order platform")
        .uid(UID)
        .description("API, sagas, read model and JetStream of one eda release (docs/observability.md)")
        .tags(["eda", "event-sourcing", "nats"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(eda_http_requests_total, namespace)")
            .include_all(True)
            .all_value(".*")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    )
    row, ids = None, iter(range(1, 1000))
    for spec in PANELS:
        if spec.row != row:
            row = spec.row
            board.with_row(dashboard.Row(row).id(next(ids)))
        board.with_panel(_panel(spec, next(ids)))
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder, sort_keys=True))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Generate the Grafana dashboard of the chart.")
    parser.add_argument("--check", action="store_true", help="fail if the checked-in file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run .venv/bin/python -P tools/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
