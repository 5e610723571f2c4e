"""Install the chart with the real Helm engine (helm-sdkpy) into kmock's Kubernetes emulator.

Run as a script in a subprocess started with ``HELM_DRIVER=memory`` (the Go runtime reads only the
environment the process started with; Helm's default Secret driver speaks protobuf, which the
emulator cannot parse):

    HELM_DRIVER=memory python helm_emulator.py CHART VALUES.json OUT.json

OUT.json receives ``{"ok": true, "objects": [...], "release": {...}}`` with every object Helm created,
or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from kmock._internal import apps

# Run as a script: the repository root goes on sys.path so the shared emulator base can be imported.
sys.path.append(str(Path(__file__).resolve().parents[2]))
from tests.kmock_base import RecordingEmulator

NAMESPACE = "default"
MONITORING_KINDS = {
    "servicemonitors": "ServiceMonitor",
    "podmonitors": "PodMonitor",
    "prometheusrules": "PrometheusRule",
}


# An OpenAPI v2 document as the API server serves it (protobuf, gnostic's openapi_v2.Document) holding
# only `swagger: "2.0"`: Helm validates hook manifests client-side and needs the download to succeed;
# with no definitions, nothing is rejected (the objects are validated against the real Kubernetes
# schema by kubernetes-validate in test_chart_install.py instead).
OPENAPI_V2 = b"\x0a\x032.0"


class Emulator(RecordingEmulator):
    """Plus what Helm needs: generation, established CRDs, core-group discovery, a current version,
    an (empty) OpenAPI document for hook validation."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /openapi/v2"] << OPENAPI_V2

    async def _serve_list(self, request: Any) -> Any:
        """Lists as the API server sends them (kind, apiVersion, a real resourceVersion): Helm's
        readiness watcher for hook Jobs (kstatus, client-go informers) decodes them; kmock 0.8 omits
        the first two and sends "..." as the third."""
        result = await super()._serve_list(request)
        items = result["items"]
        resource = request.resource
        return {
            "apiVersion": f"{resource.group}/{resource.version}" if resource.group else resource.version,
            "kind": f"{items[0]['kind']}List" if items and "kind" in items[0] else "List",
            "metadata": {"resourceVersion": str(self.last_rv)},
            "items": items,
        }

    def on_create(self, obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("generation", 1)
        if obj.get("kind") == "Job":
            # No kubelet here: a Job is done as soon as it exists (Helm waits for hook Jobs).
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["status"] = {
                "succeeded": 1,
                "startTime": now,
                "completionTime": now,
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now}
                    for t in ("SuccessCriteriaMet", "Complete")
                ],
            }
        if obj.get("kind") == "CustomResourceDefinition":
            # Helm waits for installed CRDs to be Established before rendering the templates.
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["status"] = {
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now, "reason": t}
                    for t in ("NamesAccepted", "Established")
                ],
                "acceptedNames": obj.get("spec", {}).get("names", {}),
            }

    async def _serve_server_version(self, request: Any) -> Any:
        # A current Kubernetes (kmock 0.8 claims 1.26; the chart requires >= 1.29).
        return {**await super()._serve_server_version(request), "minor": "33", "gitVersion": "v1.33.0"}

    async def _serve_version(self, request: Any) -> Any:
        # kmock 0.8 answers /api/v1 with groupVersion "/v1"; client-go's REST mapper then knows no
        # core kinds ("no matches for kind ConfigMap in version v1").
        result = await super()._serve_version(request)
        group_version = result.get("groupVersion", "")
        if group_version.startswith("/"):
            result = {**result, "groupVersion": group_version[1:]}
        return result


def _kubeconfig(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "kmock", "user": {"token": "kmock"}}],
        "contexts": [
            {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": NAMESPACE}}
        ],
        "current-context": "kmock",
    }


async def install(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    import helm_sdkpy

    async with Emulator() as k8s, apps.Server(k8s):
        k8s.resources.load_bundled()
        for plural, kind in MONITORING_KINDS.items():  # the Prometheus Operator's CRDs
            k8s.resources[f"monitoring.coreos.com/v1/{plural}"] = {
                "kind": kind,
                "namespaced": True,
                "verbs": ["list", "watch", "get", "patch", "create", "update", "delete"],
            }
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(json.dumps(_kubeconfig(str(k8s.url).rstrip("/"))))
            config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=str(kubeconfig))
            try:
                release = await helm_sdkpy.Install(config).run(
                    "eda", chart, values=values, wait=False, timeout=120
                )
            except helm_sdkpy.HelmError as e:
                return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        objects = []
        for key in list(k8s.objects):
            obj = k8s.objects[key]
            if not getattr(obj, "deleted", False):
                objects.append(obj.raw)
        return {"ok": True, "objects": objects, "release": release}


def main() -> None:
    chart, values_path, out_path = sys.argv[1:4]
    values = json.loads(Path(values_path).read_text())
    result = asyncio.run(install(chart, values))
    Path(out_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
