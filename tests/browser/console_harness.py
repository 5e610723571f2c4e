"""Helpers of the browser tests: the running system (``Console``), Chromium's location and flags, and
where screenshots go (``test-artifacts/``; the order-detail one also to ``docs/img/`` for the README)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from app.eventstore.consumer import PullLoop
from app.eventstore.jetstream import open_event_store
from app.eventstore.snapshots import SnapshotStore
from app.saga.runner import saga_loops
from app.settings import Settings
from app.workers.commands import WORKERS
from app.workers.runner import worker_loops

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JAEGER = "http://jaeger.example.test:16686"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    """The running system: ``url`` of the API, ``client`` for API calls, ``start_saga()`` on demand."""

    settings: Settings
    url: str
    client: httpx.AsyncClient
    loops: list[PullLoop] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_saga(self) -> None:
        """Start the orchestrator and the inventory/payment/shipping workers (idempotent)."""
        if self.loops:
            return
        nc = await nats.connect(self.settings.nats_url)
        store = await open_event_store(nc, self.settings)
        snapshots = await SnapshotStore.open(nc.jetstream())
        _, loops = await saga_loops(nc, store, self.settings)
        loops += await worker_loops(nc, WORKERS, self.settings, store, snapshots)
        self.loops = loops
        self.tasks += [asyncio.create_task(loop.run()) for loop in loops]

        async def close() -> None:
            await store.close()
            await nc.close()

        self._close = close

    async def create_order(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        response = await self.client.post("/api/v1/orders", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return int(response.json()["order_id"])

    async def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        for task in self.tasks:
            if not self.loops:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 10)
        if self.loops:
            await self._close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
