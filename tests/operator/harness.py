"""The operator under test: kopf running in-process with the real handlers against kmock's emulator
(``operator(kmock, settings)``), and ``Kube``, the test side's calls to the emulator and reads of the
objects it stores. Shared by the operator tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kopf
from emulator import declare

from app.settings import Settings
from eda_operator.handlers import register

NS = "default"
LIVE = "readmodel"


class Kube:
    """Test-side calls to the emulator and reads of its stored objects."""

    def __init__(self, http: aiohttp.ClientSession, kmock: Any) -> None:
        self.http, self.kmock = http, kmock

    async def create(self, url: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "eda.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS, "generation": 1},
            "spec": spec,
        }
        resp = await self.http.post(url, json=body)
        assert resp.status == 200, await resp.text()

    async def delete(self, url: str, name: str) -> None:
        resp = await self.http.delete(f"{url}/{name}")
        assert resp.status == 200

    async def patch(self, url: str, name: str, body: dict[str, Any]) -> None:
        resp = await self.http.patch(
            f"{url}/{name}", json=body, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert resp.status == 200, await resp.text()

    def obj(self, plural: str, name: str) -> Any:
        return self.kmock.objects[(f"eda.dev/v1alpha1/{plural}", NS, name)]

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.obj(plural, name).get("status") or {})

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any]:
        for c in self.status(plural, name).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return {}

    def events(self) -> list[tuple[str, str]]:
        return [
            (o["type"], o["reason"]) for (res, _, _), o in self.kmock.objects.items() if res == "v1/events"
        ]


@contextlib.asynccontextmanager
async def operator(kmock: Any, settings: Settings) -> AsyncIterator[Kube]:
    declare(kmock)
    registry = register(kopf.OperatorRegistry(), status_interval=0.2)

    @kopf.on.login(registry=registry)
    def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=memo.url)

    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            memo=kopf.Memo(url=str(kmock.url).rstrip("/"), settings=settings),
        )
    )
    try:
        async with aiohttp.ClientSession(base_url=str(kmock.url)) as http:
            yield Kube(http, kmock)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
