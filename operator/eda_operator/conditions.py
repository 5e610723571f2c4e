"""Status of a custom resource as the operator reports it: fields plus Kubernetes-style conditions.

A ``StatusTracker`` is the single writer's view of ``.status``: engines update it from their progress
callbacks (often many times per second), and a kopf timer publishes it at most once per interval
(``take()`` returns the fields changed since the last publication). Conditions follow the Kubernetes
convention: ``type``, ``status`` (``"True"``/``"False"``/``"Unknown"``), ``reason`` (CamelCase),
``message``, ``lastTransitionTime`` (changes only when ``status`` changes) and ``observedGeneration``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    """Now as RFC 3339 UTC with second precision (what Kubernetes stores)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def as_bool(value: bool | None) -> str:
    return "Unknown" if value is None else ("True" if value else "False")


class StatusTracker:
    """Accumulates ``.status`` changes; ``dirty`` until ``take()`` hands them to a patch."""

    def __init__(self, generation: int, status: Mapping[str, Any] | None = None) -> None:
        self.generation = generation
        self._status: dict[str, Any] = dict(status or {})
        self._conditions: dict[str, dict[str, Any]] = {
            c["type"]: dict(c) for c in self._status.get("conditions") or [] if "type" in c
        }
        self._changed: dict[str, Any] = {}

    @property
    def dirty(self) -> bool:
        return bool(self._changed)

    @property
    def status(self) -> Mapping[str, Any]:
        return self._status

    @property
    def phase(self) -> str | None:
        value = self._status.get("phase")
        return str(value) if value is not None else None

    def get(self, key: str) -> Any:
        return self._status.get(key)

    def condition(self, type_: str) -> dict[str, Any] | None:
        return self._conditions.get(type_)

    def update(self, **fields: Any) -> None:
        """Set status fields (``None`` removes a field on publication)."""
        for key, value in fields.items():
            if self._status.get(key) != value or key not in self._status:
                self._status[key] = value
                self._changed[key] = value

    def set_condition(self, type_: str, status: bool | None, reason: str, message: str = "") -> None:
        """Set one condition; ``lastTransitionTime`` moves only when its status changes."""
        value = as_bool(status)
        old = self._conditions.get(type_)
        if (
            old is not None
            and (old.get("status"), old.get("reason"), old.get("message")) == (value, reason, message)
            and old.get("observedGeneration") == self.generation
        ):
            return
        changed_at = old["lastTransitionTime"] if old and old.get("status") == value else now_iso()
        self._conditions[type_] = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": changed_at,
            "observedGeneration": self.generation,
        }
        self.update(conditions=sorted(self._conditions.values(), key=lambda c: str(c["type"])))

    def succeed(self, reason: str, message: str) -> None:
        """The conditions of a run that ended well: no longer ``Running``, ``Succeeded`` for ``reason``
        (``message`` says what it did), not ``Failed``."""
        self.set_condition("Running", False, "Completed")
        self.set_condition("Succeeded", True, reason, message)
        self.set_condition("Failed", False, "Succeeded")

    def take(self) -> dict[str, Any]:
        """The changes since the last ``take()`` (a merge patch for ``.status``)."""
        changed, self._changed = self._changed, {}
        return changed


def finished(status: Mapping[str, Any], generation: int, phases: tuple[str, ...]) -> bool:
    """Whether ``status`` already reports a terminal ``phase`` for this ``generation``."""
    return status.get("phase") in phases and status.get("observedGeneration") == generation
