"""Helpers of the deployment tests: paths, values merging, and `helm install` into kmock."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "eda"
PRODUCTION_VALUES = CHART / "values-production.yaml"
K8S = ROOT / "k8s"
HELPER = Path(__file__).with_name("helm_emulator.py")

Obj = dict[str, Any]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge recursively, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def helm_install(values: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """`helm install` into a fresh emulator, in a subprocess started with HELM_DRIVER=memory. Values
    without an ``auth`` section get an issuer (the chart refuses to render without one)."""
    values = values if "auth" in values else deep_merge(ISSUER, values)
    tmp.mkdir(parents=True, exist_ok=True)
    values_file, out_file = tmp / "values.json", tmp / "out.json"
    values_file.write_text(json.dumps(values))
    env = {**os.environ, "HELM_DRIVER": "memory"}
    proc = subprocess.run(
        [sys.executable, str(HELPER), str(CHART), str(values_file), str(out_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"helm install helper crashed:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


class Installed:
    """The objects of one release, with lookups by kind and component."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.objects: list[Obj] = result["objects"]
        release = result["release"]
        self.hooks: list[Obj] = [yaml.safe_load(hook["manifest"]) for hook in release.get("hooks") or []]
        self.notes: str = release["info"].get("notes", "")

    def kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> Obj:
        for obj in self.kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not installed")

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") in {"Deployment", "StatefulSet"}]

    def jobs(self) -> list[Obj]:
        """Every Job: the plain ones and the hooks (as rendered; the emulator also holds the hook Jobs
        Helm created while installing, see ``created``)."""
        plain = [o for o in self.kind("Job") if "helm.sh/hook" not in o["metadata"].get("annotations", {})]
        return plain + [h for h in self.hooks if h.get("kind") == "Job"]

    def pod_specs(self) -> list[tuple[str, Obj]]:
        """(name, pod spec) of every workload's and Job's template and of every hook Pod."""
        specs = [
            (o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in [*self.workloads(), *self.jobs()]
        ]
        specs += [(h["metadata"]["name"], h["spec"]) for h in self.hooks if h.get("kind") == "Pod"]
        return specs


ISSUER = {"auth": {"issuer": "https://login.example.com/realms/eda"}}  # the chart needs one (oidc)
IMAGES = ("image", "nats.image", "nats.promExporter.image", "postgresql.image", "jaeger.image", "tests.image")


def digest_for_tests(reference: str) -> str:
    """A well-formed digest for ``repository:tag`` in tests (derived from the name: NOT a real image's;
    the chart's real digests come from ``make pin-images``)."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def pinned(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with a (test) digest for every image of the chart, as production requires."""
    defaults = load_yaml(CHART / "values.yaml")
    pins: dict[str, Any] = {}
    for path in IMAGES:
        image = defaults
        for key in path.split("."):
            image = image[key]
        node = pins
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = {"digest": digest_for_tests(f"{image['repository']}:{image.get('tag') or 'app'}")}
    return deep_merge(values, pins)


# NATS and PostgreSQL outside the chart: the Jobs are pre-install/pre-upgrade hooks.
EXTERNAL = {
    "nats": {"enabled": False, "externalUrl": "nats://nats.messaging.svc:4222", "auth": {"enabled": True}},
    "postgresql": {"enabled": False},
    "externalDatabase": {
        "existingSecret": "eda-database",
        "api": {"existingSecret": "eda-database-api"},
        "projector": {"existingSecret": "eda-database-projector", "existingSecretKey": "url"},
    },
}

PROFILES: dict[str, Callable[[], dict[str, Any]]] = {
    "default": dict,
    "production": lambda: pinned(load_yaml(PRODUCTION_VALUES)),
    "external": lambda: copy.deepcopy(EXTERNAL),
    "full": lambda: {
        "config": {"uiEnabled": True},
        "jaeger": {"enabled": True},
        "ingress": {"enabled": True},
        "httpRoute": {"enabled": True, "parentRefs": [{"name": "gateway"}], "hostnames": ["eda.local"]},
        "api": {"autoscaling": {"enabled": True}, "pdb": {"enabled": True}},
        "nats": {
            "auth": {"enabled": True},
            "tls": {"enabled": True, "secretName": "eda-nats-tls"},
            "promExporter": {"enabled": True},
        },
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True, "annotations": {"grafana_folder": "eda"}},
        },
    },
}
