"""The chart's rollout and load-limit settings (issue 17, docs/kubernetes.md § Rollouts and load limits):
the API's preStop sleep and a termination grace period that covers it, the drain and the in-flight
requests (longer than an append's retry); PodDisruptionBudgets that never block a drain; NATS servers
spread over nodes (required anti-affinity in production); the roles spread where possible; the API's
load limits in its environment only."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from deploytools import Installed, Obj
from test_chart_install import APP_ROLES, env_of, main_container

from app.eventstore.jetstream import JetStreamEventStore

pytestmark = pytest.mark.timeout(600)

APPEND_RETRY_S = inspect.signature(JetStreamEventStore.__init__).parameters["retry_for"].default
NATS_LABELS = {"app.kubernetes.io/component": "nats", "app.kubernetes.io/instance": "eda"}


def pod(release: Installed, role: str) -> Obj:
    spec: Obj = release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
    return spec


def test_the_api_sleeps_before_sigterm_and_its_grace_period_covers_the_whole_stop(
    default_release: Installed,
) -> None:
    spec = pod(default_release, "api")
    api = main_container(default_release.get("Deployment", "eda-api"))
    assert api["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    env = env_of(api)
    grace, drain = int(env["EDA_SHUTDOWN_GRACE_S"]), float(env["EDA_SHUTDOWN_DRAIN_S"])
    assert grace > APPEND_RETRY_S  # an append that is being retried finishes
    # preStop + drain + in-flight requests + closing the clients: the kubelet never SIGKILLs earlier
    assert spec["terminationGracePeriodSeconds"] == 5 + drain + grace + 10 == 45
    for role in APP_ROLES[1:]:
        others = pod(default_release, role)
        assert "lifecycle" not in others["containers"][0], role  # no Service routes to them
        assert others["terminationGracePeriodSeconds"] == 30, role


def test_the_grace_period_follows_the_shutdown_values(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    shutdown = {"preStopSleepSeconds": 0, "drainSeconds": 2.5, "graceSeconds": 40}
    result = install_chart({"api": {"shutdown": shutdown}})
    assert result["ok"], result.get("error")
    release = Installed(result)
    api = main_container(release.get("Deployment", "eda-api"))
    assert "lifecycle" not in api
    assert (env_of(api)["EDA_SHUTDOWN_DRAIN_S"], env_of(api)["EDA_SHUTDOWN_GRACE_S"]) == ("2.5", "40")
    assert pod(release, "api")["terminationGracePeriodSeconds"] == 0 + 3 + 40 + 10


def test_only_the_api_gets_the_load_limits(default_release: Installed, production_release: Installed) -> None:
    env = env_of(main_container(default_release.get("Deployment", "eda-api")))
    assert env["EDA_HTTP_MAX_CONCURRENCY"] == "512"
    assert env["EDA_HTTP_KEEPALIVE_S"] == "75"  # above ingress-nginx's and ALB's 60 s idle timeout
    assert env["EDA_RATE_LIMIT"] == "50/second;1000/minute"
    assert env["EDA_TRUSTED_PROXIES"] == ""  # trust no X-Forwarded-For by default
    assert (env["EDA_DB_COMMAND_TIMEOUT_S"], env["EDA_DB_ACQUIRE_TIMEOUT_S"]) == ("10", "5")
    assert (env["EDA_UI_MAX_STREAMS"], env["EDA_PROJECTION_LAG_DEGRADED"]) == ("100", "10000")
    production = env_of(main_container(production_release.get("Deployment", "eda-api")))
    assert production["EDA_TRUSTED_PROXIES"] == "10.0.0.0/8"
    for role in APP_ROLES[1:]:
        other = env_of(main_container(default_release.get("Deployment", f"eda-{role}")))
        assert not {k for k in other if k.startswith(("EDA_RATE_LIMIT", "EDA_HTTP_", "EDA_SHUTDOWN"))}, role


def _selects(budget: Obj, workload: Obj) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in budget["spec"]["selector"]["matchLabels"].items())


def test_every_role_and_nats_have_a_budget_that_never_blocks_a_drain(default_release: Installed) -> None:
    budgets = {b["metadata"]["name"]: b for b in default_release.kind("PodDisruptionBudget")}
    for role in [r for r in APP_ROLES if r != "operator"]:
        budget = budgets[f"eda-{role}"]["spec"]
        assert budget["maxUnavailable"] == 1, role  # with one replica a drain still proceeds
        assert "minAvailable" not in budget, role
        assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow", role
        assert _selects(budgets[f"eda-{role}"], default_release.get("Deployment", f"eda-{role}"))
    nats = budgets["eda-nats"]
    assert nats["spec"]["maxUnavailable"] == 1  # one server at a time: quorum kept
    assert "unhealthyPodEvictionPolicy" not in nats["spec"]  # a sick server is not evicted past it
    assert _selects(nats, default_release.get("StatefulSet", "eda-nats"))


def test_production_budgets_keep_replicas(production_release: Installed) -> None:
    api = production_release.get("PodDisruptionBudget", "eda-api")["spec"]
    assert (api["minAvailable"], "maxUnavailable" in api) == (2, False)


def test_nats_servers_spread_over_nodes_and_never_share_one_in_production(
    default_release: Installed, production_release: Installed
) -> None:
    spec = default_release.get("StatefulSet", "eda-nats")["spec"]["template"]["spec"]
    by_key = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    node = by_key["kubernetes.io/hostname"]
    assert (node["maxSkew"], node["whenUnsatisfiable"], node["nodeTaintsPolicy"]) == (
        1,
        "DoNotSchedule",
        "Honor",
    )
    assert node["labelSelector"]["matchLabels"].items() >= NATS_LABELS.items()
    assert by_key["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    preferred = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"

    prod = production_release.get("StatefulSet", "eda-nats")["spec"]["template"]["spec"]
    required = prod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"
    assert required[0]["labelSelector"]["matchLabels"].items() >= NATS_LABELS.items()
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in prod["affinity"]["podAntiAffinity"]


def test_roles_spread_where_possible_unless_they_say_otherwise(
    default_release: Installed, production_release: Installed
) -> None:
    for role in APP_ROLES:
        constraints = pod(default_release, role)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for c in constraints:
            assert c["whenUnsatisfiable"] == "ScheduleAnyway", role  # never Pending for it
            assert c["matchLabelKeys"] == ["pod-template-hash"], role  # a rollout counts the new pods
            assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == role
    own = pod(production_release, "api")["topologySpreadConstraints"]  # values-production sets its own
    assert [c["topologyKey"] for c in own] == ["topology.kubernetes.io/zone"]


def test_the_saga_is_recreated_and_the_other_roles_roll(default_release: Installed) -> None:
    """Two releases' orchestrators must never pull side by side (an old one drops the facts of sagas
    the new design started: tests/saga/test_upgrade.py); every other role rolls without a gap."""
    strategies = {
        role: default_release.get("Deployment", f"eda-{role}")["spec"]["strategy"] for role in APP_ROLES
    }
    assert strategies.pop("saga") == {"type": "Recreate"}
    assert strategies.pop("operator") == {"type": "Recreate"}  # one kopf instance at a time
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert strategies == dict.fromkeys(strategies, rolling)
