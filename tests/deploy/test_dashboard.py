"""The Grafana dashboard: the checked-in JSON is what ``tools/dashboard.py`` generates, it survives a
round trip through Grafana's schema model (grafana-foundation-sdk: a field or panel the schema does not
know would be dropped and the comparison fail), its queries are valid PromQL for a real promtool, the
metrics it plots are the documented ones, and the chart ships it in a ConfigMap for Grafana's sidecar."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import ROOT, Installed
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from tools import dashboard as generator

BOARD: dict[str, Any] = json.loads(generator.OUT.read_text())
PANELS = [p for p in BOARD["panels"] if p["type"] != "row"]
PROMTOOL = shutil.which("promtool")


def test_checked_in_json_is_generated_from_code() -> None:
    assert generator.OUT.read_text() == generator.render(), "run .venv/bin/python -P tools/dashboard.py"


def test_round_trips_through_grafanas_dashboard_schema_model() -> None:
    model = Dashboard.from_json(BOARD)
    assert json.loads(json.dumps(model, cls=JSONEncoder, sort_keys=True)) == BOARD
    bogus = json.loads(json.dumps(BOARD))
    bogus["panels"][1]["not_in_the_schema"] = True  # the check can fail
    assert json.loads(json.dumps(Dashboard.from_json(bogus), cls=JSONEncoder)) != bogus


def test_panels_have_ids_titles_units_and_the_datasource_variable() -> None:
    ids = [p["id"] for p in BOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert len(PANELS) >= 12
    for panel in PANELS:
        assert panel["title"], panel
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    titles = " ".join(p["title"].lower() for p in PANELS)
    for wanted in (
        "request",
        "latency",
        "orders created",
        "saga outcomes",
        "step",
        "projection lag",
        "dead",
        "storage",
    ):
        assert wanted in titles, wanted


def _exprs() -> list[str]:
    return [t["expr"] for p in PANELS for t in p["targets"]]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian: apt-get install prometheus)")
def test_queries_are_valid_promql(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = [
        {"record": f"eda:panel_{i}", "expr": e.replace("$__rate_interval", "2m").replace("$namespace", ".*")}
        for i, e in enumerate(_exprs())
    ]
    (tmp_path / "panels.yaml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "panels.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_plotted_metrics_are_documented() -> None:
    documented = (ROOT / "docs" / "observability.md").read_text()
    names = {
        m for e in _exprs() for m in re.findall(r"\b(eda_[a-z_]+?)(?:_bucket|_count)?\b(?=[{(\[ ]|$)", e)
    }
    assert len(names) >= 12
    for name in sorted(names):
        assert f"`{name}`" in documented, f"{name} is not in docs/observability.md"


def test_the_chart_ships_it_for_the_grafana_sidecar(full_release: Installed) -> None:
    config_map = full_release.get("ConfigMap", "eda-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "eda"
    assert json.loads(config_map["data"]["eda.json"]) == BOARD
