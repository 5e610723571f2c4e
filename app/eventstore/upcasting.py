"""Upcasting: pure ``dict -> dict`` functions per ``(type, version)`` that lift old events on read.

Stored events are never rewritten; an old event is upcast step by step (v1 → v2 → ...) every time it
is read, so the domain only ever sees current types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterRegistry:
    """Upcasters keyed by the ``(type, version)`` they read; each yields ``version + 1``."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: ``fn`` lifts ``event_type`` from ``from_version`` to ``from_version + 1``."""

        def add(fn: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._steps:
                raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
            self._steps[key] = fn
            return fn

        return add

    def upcast(self, event_type: str, version: int, data: dict[str, Any], target: int) -> dict[str, Any]:
        """Apply the chain from ``version`` up to ``target``; fail loudly on a gap in the chain."""
        while version < target:
            step = self._steps.get((event_type, version))
            if step is None:
                raise LookupError(f"no upcaster for {event_type} v{version} (current is v{target})")
            data = step(dict(data))
            version += 1
        return data


def default_upcasters() -> UpcasterRegistry:
    """The upcasters of all aggregates of this system."""
    registry = UpcasterRegistry()

    @registry.register("OrderCreated", 1)
    def order_created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        # v1 predates multi-currency: every order then was in US dollars.
        data.setdefault("currency", "USD")
        data.setdefault("items", [])
        return data

    @registry.register("OrderCreated", 2)
    def order_created_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        # v2 predates authentication: an order belonged to the customer it was placed for.
        data.setdefault("owner", str(data["user_id"]))
        return data

    return registry
