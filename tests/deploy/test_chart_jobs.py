"""The once-per-release Jobs, the images pinned by digest and the least-privilege network paths:

- ``eda provision`` (NATS user ``provision``, ``EDA_STREAM_REPLICAS``, no database) and ``eda migrate``
  (the owner's DSN, no NATS user) run as Jobs; with external NATS and PostgreSQL as pre-install/
  pre-upgrade hooks, provision ordered before migrate; with a bundled server as plain Jobs named per
  revision (a pre-install hook would run before the bundled servers exist);
- every image reference carries a digest when ``images.requireDigest`` (production), which refuses to
  render an image without one; the bundled nats-server is the version the tests run;
- the NATS monitoring port is reachable only from the metrics namespace; saga and workers have no path
  to PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from deploytools import CHART, IMAGES, PRODUCTION_VALUES, Installed, Obj, load_yaml, pinned

from app.dev.nats import nats_server_binary

pytestmark = pytest.mark.timeout(600)

PINNED = re.compile(r"^[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}$")


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def jobs_of(release: Installed) -> dict[str, Obj]:
    return {j["metadata"]["labels"]["app.kubernetes.io/component"]: j for j in release.jobs()}


def test_bundled_servers_get_plain_jobs_per_revision(default_release: Installed) -> None:
    jobs = jobs_of(default_release)
    assert {name: j["metadata"]["name"] for name, j in jobs.items()} == {
        "provision": "eda-provision-1",
        "migrate": "eda-migrate-1",
    }
    assert not [h for h in default_release.hooks if h["kind"] == "Job"]
    for job in jobs.values():
        assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
    provision = jobs["provision"]["spec"]["template"]["spec"]["containers"][0]
    assert provision["args"] == ["provision", "--timeout", "600"]
    env = env_of(provision)
    assert env["EDA_STREAM_REPLICAS"] == "3"
    assert "EDA_DATABASE_URL" not in env
    migrate_spec = jobs["migrate"]["spec"]["template"]["spec"]
    migrate = migrate_spec["containers"][0]
    assert migrate["args"] == ["migrate", "--timeout", "600"]
    assert env_of(migrate)["EDA_DATABASE_URL"] == {
        "secretKeyRef": {"name": "eda-postgresql", "key": "database-url"}
    }
    (setup,) = migrate_spec["initContainers"]  # the bundled PostgreSQL: owner and logins first
    assert setup["name"] == "db-setup"
    assert env_of(setup)["PGUSER"] == "postgres"


def test_external_servers_get_hooks_provision_before_migrate(external_release: Installed) -> None:
    hooks = {h["metadata"]["name"]: h for h in external_release.hooks if h["kind"] == "Job"}
    assert set(hooks) == {"eda-provision", "eda-migrate"}
    annotations = {name: hook["metadata"]["annotations"] for name, hook in hooks.items()}
    for found in annotations.values():
        assert found["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert found["helm.sh/hook-delete-policy"] == "before-hook-creation"
    weight = {name: int(a["helm.sh/hook-weight"]) for name, a in annotations.items()}
    assert weight["eda-provision"] < weight["eda-migrate"]
    # the real Helm engine ran them in that order, each to completion, before any other object
    created = sorted(external_release.objects, key=lambda o: int(o["metadata"]["resourceVersion"]))
    kinds = [o["kind"] for o in created if o["kind"] != "CustomResourceDefinition"]
    names = [o["metadata"]["name"] for o in created if o["kind"] == "Job"]
    assert names == ["eda-provision", "eda-migrate"]
    assert kinds[:2] == ["Job", "Job"]
    migrate_spec = hooks["eda-migrate"]["spec"]["template"]["spec"]
    assert "initContainers" not in migrate_spec  # an external database's logins are the DBA's
    assert env_of(migrate_spec["containers"][0])["EDA_DATABASE_URL"] == {
        "secretKeyRef": {"name": "eda-database", "key": "database-url"}
    }
    # a hook runs before this release's objects exist: it may only use what exists already
    provision_spec = hooks["eda-provision"]["spec"]["template"]["spec"]
    assert "serviceAccountName" not in provision_spec
    env = env_of(provision_spec["containers"][0])
    assert env["EDA_NATS_URL"] == "nats://nats.messaging.svc:4222"
    assert env["EDA_NATS_PASSWORD"] == {"secretKeyRef": {"name": "eda-nats-auth", "key": "provision"}}


def _image_refs(release: Installed) -> list[str]:
    return [
        c["image"]
        for _, spec in release.pod_specs()
        for c in [*spec.get("initContainers", []), *spec["containers"]]
    ]


def test_production_pulls_every_image_by_digest(production_release: Installed) -> None:
    refs = _image_refs(production_release)
    assert len(refs) > 10
    assert [r for r in refs if not PINNED.match(r)] == []
    assert any(r.startswith("nats:2.15.1-alpine@sha256:") for r in refs)


def test_a_required_digest_that_is_missing_or_malformed_is_refused(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    values = pinned(load_yaml(PRODUCTION_VALUES))
    del values["nats"]["image"]["digest"]
    missing = install_chart(values)
    assert not missing["ok"]
    assert (
        "nats.image (nats:2.15.1-alpine) has no digest and images.requireDigest is true" in missing["error"]
    )
    malformed = install_chart({"jaeger": {"enabled": True, "image": {"digest": "sha256:abc"}}})
    assert not malformed["ok"]
    assert "digest" in malformed["error"]


def test_the_nats_exporter_sidecar_is_pulled_by_digest_too(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """The optional sidecar is an image like any other: pinned in production, refused without a digest
    (it used to be rendered as ``repository:tag`` whatever ``images.requireDigest`` said)."""
    values = pinned(load_yaml(PRODUCTION_VALUES))
    values["nats"]["promExporter"] = values["nats"].get("promExporter", {}) | {"enabled": True}
    release = install_chart(values)
    assert release["ok"], release.get("error")
    sidecars = [
        c["image"]
        for obj in release["objects"]
        if obj["kind"] == "StatefulSet"
        for c in obj["spec"]["template"]["spec"]["containers"]
        if c["name"] == "prom-exporter"
    ]
    assert len(sidecars) == 1, sidecars
    assert PINNED.match(sidecars[0]), sidecars
    assert sidecars[0].startswith("natsio/prometheus-nats-exporter:")
    del values["nats"]["promExporter"]["image"]["digest"]
    missing = install_chart(values)
    assert not missing["ok"]
    assert "nats.promExporter.image (natsio/prometheus-nats-exporter:" in missing["error"], missing["error"]


def test_every_image_of_the_chart_can_be_pinned() -> None:
    values = load_yaml(CHART / "values.yaml")
    for path in IMAGES:
        node = values
        for key in path.split("."):
            node = node[key]
        assert "digest" in node, path  # `make pin-images` fills these


def test_the_bundled_nats_server_is_the_one_the_tests_run(default_release: Installed) -> None:
    version = subprocess.run(
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    tested = re.search(r"v(\d+\.\d+\.\d+)", version)
    assert tested is not None
    nats = default_release.get("StatefulSet", "eda-nats")["spec"]["template"]["spec"]["containers"][0]
    assert nats["image"].split(":")[1].split("-")[0] == tested[1]


def _from(rule: Obj) -> list[Obj]:
    return list(rule.get("from", []))


def test_nats_monitoring_only_from_the_metrics_namespace(release: Installed) -> None:
    if not any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "eda-nats" for o in release.objects):
        pytest.skip("no bundled NATS in this profile")
    policy = release.get("NetworkPolicy", "eda-nats")
    (monitor,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "monitor"]
    assert _from(monitor) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_saga_and_workers_have_no_path_to_postgresql(default_release: Installed) -> None:
    for role in ("saga", "worker-inventory", "worker-payment", "worker-shipping", "provision"):
        egress = default_release.get("NetworkPolicy", f"eda-{role}")["spec"]["egress"]
        ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
        assert 5432 not in ports, role
    pg = default_release.get("NetworkPolicy", "eda-postgresql")
    allowed = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in pg["spec"]["ingress"]
        for peer in _from(rule)
    }
    assert allowed == {"api", "projector", "operator", "migrate"}
