"""What kmock 0.8's ``KubernetesEmulator`` lacks for real clients, shared by the operator tests
(kopf, tests/operator/emulator.py) and the chart tests (Helm, tests/deploy/helm_emulator.py): uid,
resourceVersion on every write, generateName, creationTimestamp, and 422 for a failed JSON-patch test
(kopf's optimistic status patches) instead of a crash. Subclasses add what their client needs through
``on_create``.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import jsonpatch
from kmock import KubernetesEmulator, KubernetesError, action


class RecordingEmulator(KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with object identity and versions like a real API server."""

    last_rv = 0

    def _next_rv(self) -> str:
        self.last_rv += 1
        return str(self.last_rv)

    def on_create(self, obj: dict[str, Any]) -> None:
        """Hook for subclasses: adjust a new object before it is stored."""

    async def _handle(self, request: Any) -> Any:
        data = request.data
        if request.action == action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).isoformat())
            meta["resourceVersion"] = self._next_rv()
            self.on_create(data)
        elif request.action == action.UPDATE and isinstance(data, dict):
            data.setdefault("metadata", {})["resourceVersion"] = self._next_rv()
        elif request.action == action.UPDATE and isinstance(data, list):
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": self._next_rv()})
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchException as e:
            raise KubernetesError(status=422, reason="Invalid", message=str(e)) from e
