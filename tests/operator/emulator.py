"""kmock 0.8's KubernetesEmulator plus what kopf relies on (from ../shared/design/operator-testing/),
the resources of our CRDs declared from ``k8s/crds/`` (the single source of truth), and the CRD schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.kmock_base import RecordingEmulator

CRD_DIR = Path(__file__).resolve().parents[2] / "k8s" / "crds"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "k8s" / "examples"
VERBS = ["list", "watch", "get", "patch", "create", "update", "delete"]


class Emulator(RecordingEmulator):
    """Plus resumable watches and list resourceVersions (what kopf's watch loop relies on)."""

    async def _serve_list(self, request: Any) -> Any:
        result = await super()._serve_list(request)
        return {**result, "metadata": {"resourceVersion": str(self.last_rv)}}

    async def _serve_watch(self, request: Any) -> Any:
        yield b""
        since_raw = request.params.get("resourceVersion", "")
        since = int(since_raw) if since_raw.isdigit() else -1
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            objs = self._KubernetesEmulator__get_objs(request, strict=False)
            events = [
                {"type": "ADDED", "object": obj.raw}
                for obj in objs
                if not obj.deleted and int(obj.get("metadata", {}).get("resourceVersion") or 0) > since
            ]
        try:
            for event in events:
                yield event
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if self._KubernetesEmulator__check(
                    request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
                ):
                    yield event
        finally:
            await bus.unmark(marker)


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


def crd_schema(kind: str, version: str = "v1alpha1") -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind`` (for jsonschema validation)."""
    for crd in crds():
        if crd["spec"]["names"]["kind"] == kind:
            for v in crd["spec"]["versions"]:
                if v["name"] == version:
                    schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
                    return schema
    raise KeyError(kind)


def declare(kmock: Any) -> None:
    """Declare every resource kopf needs, BEFORE kopf starts (it scans once)."""
    kmock.resources["v1/namespaces"] = {
        "kind": "Namespace",
        "namespaced": False,
        "verbs": ["list", "watch", "get"],
    }
    kmock.resources["v1/events"] = {"kind": "Event", "namespaced": True, "verbs": ["create", "list", "get"]}
    for crd in crds():
        names = crd["spec"]["names"]
        for version in crd["spec"]["versions"]:
            kmock.resources[f"{crd['spec']['group']}/{version['name']}/{names['plural']}"] = {
                "kind": names["kind"],
                "singular": names["singular"],
                "shortnames": names.get("shortNames", []),
                "categories": names.get("categories", []),
                "namespaced": crd["spec"]["scope"] == "Namespaced",
                "subresources": list(version.get("subresources", {})),
                "verbs": VERBS,
            }
