"""`helm lint` with the real Helm engine (helm-sdkpy): no errors or warnings, default values plus an
issuer, with auth disabled, and production."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import CHART, ISSUER, PRODUCTION_VALUES, deep_merge, load_yaml, pinned

pytestmark = pytest.mark.timeout(300)

INFO, WARNING, ERROR = 1, 2, 3


def lint(chart: Path) -> dict[str, Any]:
    import helm_sdkpy

    result: dict[str, Any] = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(chart)))
    return result


def problems(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= WARNING]


def lint_with(tmp_path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """helm-sdkpy's Lint takes no values: lint a copy of the chart whose values.yaml is the merge."""
    chart = tmp_path / "eda"
    shutil.copytree(CHART, chart)
    merged = deep_merge(load_yaml(CHART / "values.yaml"), values)
    (chart / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return lint(chart)


def test_lint_default_values_with_an_issuer(tmp_path: Path) -> None:
    result = lint_with(tmp_path, ISSUER)
    assert result["TotalChartsLinted"] == 1
    assert not problems(result), result
    assert not result.get("Errors"), result


def test_lint_with_auth_disabled(tmp_path: Path) -> None:
    """(Without an issuer `helm install` fails: test_chart_install.py::test_no_issuer_no_release;
    helm lint only reports a template's fail() as information.)"""
    disabled = lint_with(tmp_path, {"auth": {"mode": "disabled"}})
    assert not problems(disabled), disabled


def test_lint_production_values(tmp_path: Path) -> None:
    result = lint_with(tmp_path, pinned(load_yaml(PRODUCTION_VALUES)))
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
