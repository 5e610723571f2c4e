"""The order in which ``helm install`` brings up a release's workloads, for starting them as processes.

Helm creates the ``pre-install`` hooks one after the other, sorted by ``helm.sh/hook-weight`` (then by
name), and waits for each hook Job to complete before the next; then it creates the release's objects
all at once — plain Jobs and Deployments alike, which Kubernetes starts together (a role started before
a plain Job finished waits for it, saying why). ``helm test`` hooks run later, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.deploy.deploytools import Installed

Obj = dict[str, Any]
PRE_INSTALL = "pre-install"


@dataclass(frozen=True)
class Workload:
    """A Job or a Deployment: its name and its pod template's spec."""

    kind: str
    name: str
    spec: Obj


def _workload(obj: Obj) -> Workload:
    return Workload(obj["kind"], obj["metadata"]["name"], obj["spec"]["template"]["spec"])


def _hook_phases(obj: Obj) -> set[str]:
    return set(obj["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))


def _weight(obj: Obj) -> int:
    return int(obj["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))


def pre_install_hooks(chart: Installed) -> list[Workload]:
    """The pre-install hook Jobs, in the order Helm runs them (each to completion before the next)."""
    hooks = [h for h in chart.hooks if h["kind"] == "Job" and PRE_INSTALL in _hook_phases(h)]
    return [_workload(h) for h in sorted(hooks, key=lambda h: (_weight(h), h["metadata"]["name"]))]


def release_workloads(chart: Installed) -> list[Workload]:
    """The release's own Jobs and Deployments (created together after the hooks)."""
    plain_jobs = [j for j in chart.kind("Job") if not _hook_phases(j) - {""}]
    return [_workload(o) for o in [*plain_jobs, *chart.kind("Deployment")]]
