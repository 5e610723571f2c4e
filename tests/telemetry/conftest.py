"""The whole system as SEPARATE processes (``eda api``, ``eda projector``, ``eda saga``, ``eda worker
inventory|payment|shipping``) on the session's NATS and a fresh PostgreSQL database, exporting traces
over OTLP/HTTP to a receiver in this test process. Started once per module."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.dev.postgres import Postgres
from app.dev.process import free_port, log_tail, stop_all
from app.readmodel.migrations import migrate_dsn
from tests.e2e.conftest import EDA
from tests.support.eventually import eventually, serving
from tests.support.jetstream import reset_and_provision
from tests.telemetry.receiver import Receiver, otlp_receiver

DECLINE_ABOVE = 1000
ROLES: dict[str, list[str]] = {
    "api": [],
    "projector": ["projector"],
    "saga": ["saga"],
    "inventory": ["worker", "inventory"],
    "payment": ["worker", "payment"],
    "shipping": ["worker", "shipping"],
}


@dataclass
class Traced:
    """The running system: API base URL, each role's health port, the receiver, the DB and the log."""

    api: str
    health: dict[str, int]
    receiver: Receiver
    dsn: str
    log: Path
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))

    async def create(self, amount: float, user_id: int = 7) -> int:
        """An order of one unit of a product priced ``amount`` (prices come from the catalog)."""
        product = 1000 + round(amount * 100)
        priced = await self.client.put(f"{self.api}/api/v1/catalog/{product}", json={"price": amount})
        assert priced.status_code == 200, priced.text
        body = {"user_id": user_id, "items": [{"product_id": product, "quantity": 1}], "amount": amount}
        resp = await self.client.post(f"{self.api}/api/v1/orders", json=body)
        assert resp.status_code == 201, resp.text
        order_id: int = resp.json()["order_id"]
        return order_id

    async def status(self, order_id: int, want: set[str], timeout: float = 30.0) -> str:
        async def reached() -> str | None:
            resp = await self.client.get(f"{self.api}/api/v1/orders/{order_id}")
            status = resp.json()["status"] if resp.status_code == 200 else None
            return str(status) if status in want else None

        what = f"order {order_id} in {want}"
        try:
            return await eventually(reached, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:  # where the order and its saga stand, and what the roles said
            order = await self.client.get(f"{self.api}/api/v1/orders/{order_id}")
            saga = await self.client.get(f"{self.api}/api/v1/orders/{order_id}/saga")
            raise AssertionError(
                f"{exc}\norder: {order.status_code} {order.text}\nsaga: {saga.status_code} {saga.text}"
                f"\n--- {self.log} ---\n{log_tail(self.log, 60)}"
            ) from None

    async def metrics(self, role: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """``/metrics`` of ``role`` as {(sample name, sorted labels without otel_scope_*): value}."""
        resp = await self.client.get(f"http://127.0.0.1:{self.health[role]}/metrics")
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(resp.text):
            for s in family.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))
                out[(s.name, labels)] = s.value
        return out


@pytest.fixture(scope="module")
def module_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="eda-otel-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
async def traced(nats_url: str, postgres: Postgres, module_tmp: Path) -> AsyncIterator[Traced]:
    await reset_and_provision(nats_url)  # what `eda provision` does before the roles start
    name = f"otel_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres.dsn_for("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = postgres.dsn_for(name)
    await migrate_dsn(dsn, "readmodel")  # and `eda migrate`
    api_port = free_port()
    health = {role: free_port() for role in ROLES}
    log = module_tmp / "roles.log"

    async with otlp_receiver() as receiver:
        base_env = dict(os.environ) | {
            "EDA_NATS_URL": nats_url,
            "EDA_DATABASE_URL": dsn,
            "EDA_LOG_LEVEL": "INFO",
            "EDA_DEFAULT_STOCK": "100000",
            "EDA_PAYMENT_DECLINE_ABOVE": str(DECLINE_ABOVE),
            "EDA_AUTH_MODE": "disabled",  # traces and metrics are the subject here, not tokens
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }
        procs: list[subprocess.Popen[bytes]] = []
        with log.open("ab") as out:
            for role, args in ROLES.items():
                env = base_env | {"EDA_HEALTH_PORT": str(health[role])}
                argv = ["api", "--host", "127.0.0.1", "--port", str(api_port)] if role == "api" else args
                procs.append(
                    subprocess.Popen([EDA, *argv], env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
                )
        system = Traced(f"http://127.0.0.1:{api_port}", health, receiver, dsn, log)
        try:
            await serving(system.client, f"{system.api}/readyz")
            for role in ROLES:  # ready, not only live: /livez answers while a role is still starting
                if role != "api":
                    await serving(system.client, f"http://127.0.0.1:{health[role]}/readyz")
            yield system
        finally:
            await system.client.aclose()
            # stop all at once, waiting off the event loop: the receiver must keep answering their
            # last span exports while they shut down
            await asyncio.to_thread(stop_all, procs, 15)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
