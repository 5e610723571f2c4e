"""`helm lint` with the real Helm engine (helm-sdkpy): no errors or warnings, default and production."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import CHART, PRODUCTION_VALUES, deep_merge, load_yaml

pytestmark = pytest.mark.timeout(300)

INFO, WARNING, ERROR = 1, 2, 3


def lint(chart: Path) -> dict[str, Any]:
    import helm_sdkpy

    result: dict[str, Any] = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(chart)))
    return result


def problems(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= WARNING]


def test_lint_default_values() -> None:
    result = lint(CHART)
    assert result["TotalChartsLinted"] == 1
    assert not problems(result), result
    assert not result.get("Errors"), result


def test_lint_production_values(tmp_path: Path) -> None:
    # helm-sdkpy's Lint takes no values: lint a copy of the chart whose values.yaml is the merge.
    chart = tmp_path / "eda"
    shutil.copytree(CHART, chart)
    merged = deep_merge(load_yaml(CHART / "values.yaml"), load_yaml(PRODUCTION_VALUES))
    (chart / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    result = lint(chart)
    assert not problems(result), result
    assert not result.get("Errors"), result


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    chart = tmp_path / "eda"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "broken.yaml").write_text("{{ .Values.nope.missing }\n")
    result = lint(chart)
    assert problems(result) or result.get("Errors")


def test_chart_metadata() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "eda"
    assert chart["type"] == "application"
    assert (CHART / "values.schema.json").is_file()
    assert (CHART / "templates" / "NOTES.txt").is_file()
