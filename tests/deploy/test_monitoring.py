"""Monitoring in the chart: the PrometheusRule passes a real ``promtool check rules`` and the promtool
unit tests of ``prometheus_rules_test.yaml`` (every alert fires on synthetic series and stays silent on
healthy ones), every alert has a severity and a runbook section in docs/runbooks.md, and the
ServiceMonitor/PodMonitor/annotations scrape every ``/metrics`` port (and nothing else)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import ROOT, Installed

TESTS = Path(__file__).with_name("prometheus_rules_test.yaml")
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMTOOL = shutil.which("promtool")


def _alerts(release: Installed) -> list[dict[str, Any]]:
    [rule] = release.kind("PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def _write_rules(release: Installed, where: Path) -> Path:
    [rule] = release.kind("PrometheusRule")
    (where / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    shutil.copy(TESTS, where / TESTS.name)
    return where


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian: apt-get install prometheus)")
def test_rules_pass_promtool_check_and_unit_tests(full_release: Installed, tmp_path: Path) -> None:
    assert PROMTOOL is not None
    where = _write_rules(full_release, tmp_path)
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yaml"], cwd=where, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts(full_release))} rules found" in checked.stdout
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", TESTS.name], cwd=where, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian: apt-get install prometheus)")
def test_promtool_unit_tests_fail_when_a_rule_changes(full_release: Installed, tmp_path: Path) -> None:
    """The unit tests are not vacuous: a rule with a raised threshold no longer fires where expected."""
    assert PROMTOOL is not None
    where = _write_rules(full_release, tmp_path)
    rules = (where / "rules.yaml").read_text().replace("> 10000", "> 50000")
    (where / "rules.yaml").write_text(rules)
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", TESTS.name], cwd=where, capture_output=True, text=True, check=False
    )
    assert tested.returncode != 0
    assert "EdaProjectionLagHigh" in tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_silent_case(full_release: Installed) -> None:
    cases = yaml.safe_load(TESTS.read_text())["tests"]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {a["alert"] for a in _alerts(full_release)}
    assert len(names) >= 15
    assert names == fires, names ^ fires
    assert names == silent, names ^ silent


def test_every_alert_has_severity_summary_and_a_runbook_section(full_release: Installed) -> None:
    sections = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for alert in _alerts(full_release):
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        notes = alert["annotations"]
        assert notes["summary"], alert["alert"]
        assert notes["description"], alert["alert"]
        base, anchor = notes["runbook_url"].split("#")
        assert base.endswith("/docs/runbooks.md")
        assert anchor == alert["alert"].lower(), alert["alert"]
        assert anchor in sections, f"docs/runbooks.md has no section {alert['alert']}"


def _metrics_ports(release: Installed) -> dict[str, str]:
    """component → the named container port serving /metrics (from the scrape annotations)."""
    out = {}
    for workload in release.workloads():
        template = workload["spec"]["template"]
        notes = template["metadata"].get("annotations", {})
        if notes.get("prometheus.io/scrape") != "true":
            continue
        port = int(notes["prometheus.io/port"])
        named = {
            p["containerPort"]: p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])
        }
        out[template["metadata"]["labels"]["app.kubernetes.io/component"]] = named[port]
    return out


def test_scrape_annotations_name_each_metrics_port(full_release: Installed) -> None:
    ports = _metrics_ports(full_release)
    assert ports == {
        "api": "http",
        "projector": "health",
        "saga": "health",
        "worker-inventory": "health",
        "worker-payment": "health",
        "worker-shipping": "health",
        "operator": "metrics",  # kopf's "health" port has no /metrics
        "nats": "prom-metrics",
    }


def test_service_and_pod_monitors_cover_every_metrics_port(full_release: Installed) -> None:
    [service_monitor] = full_release.kind("ServiceMonitor")
    [pod_monitor] = full_release.kind("PodMonitor")
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    wanted = set(_metrics_ports(full_release).values())
    endpoints = {e["port"] for e in service_monitor["spec"]["endpoints"]}
    assert endpoints == wanted
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} == wanted
    selector = service_monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s
        for s in full_release.kind("Service")
        if selector.items() <= s["metadata"]["labels"].items()
        and {p["name"] for p in s["spec"]["ports"]} & endpoints
    ]
    by_component: dict[str, list[str]] = {}
    for s in scraped:
        component = s["metadata"]["labels"]["app.kubernetes.io/component"]
        by_component.setdefault(component, []).extend(
            p["name"] for p in s["spec"]["ports"] if p["name"] in endpoints
        )
    # each component is scraped through exactly one Service port: no target twice
    assert {c: sorted(p) for c, p in by_component.items()} == {
        c: [p] for c, p in _metrics_ports(full_release).items()
    }
    health = next(e for e in pod_monitor["spec"]["podMetricsEndpoints"] if e["port"] == "health")
    assert health["relabelings"][0]["regex"] == "operator"  # kopf's probe port is not scraped


def test_network_policy_lets_the_scraper_reach_the_operator_and_exporter_metrics(
    full_release: Installed,
) -> None:
    operator = full_release.get("NetworkPolicy", "eda-operator")
    nats = full_release.get("NetworkPolicy", "eda-nats")
    ports = lambda policy: {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}  # noqa: E731
    assert "metrics" in ports(operator)
    assert "prom-metrics" in ports(nats)
