"""``eda operator`` as a separate process (against kmock's KubernetesEmulator through a kubeconfig, with
real NATS + PostgreSQL), exporting OTLP to a real receiver: each reconcile of a ProjectionRebuild, a
Snapshot or a Backup is a span whose children are the engine's spans (one trace from the operator's
decision down to the rebuild), and ``/metrics`` on its health port counts reconciles by kind and outcome."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from emulator import Emulator, declare
from prometheus_client.parser import text_string_to_metric_families
from seeding import seed_orders

from app.dev.process import free_port, terminate
from app.eventstore.jetstream import JetStreamEventStore
from tests.e2e.conftest import EDA
from tests.telemetry.receiver import otlp_receiver

pytestmark = [pytest.mark.kmock(cls=Emulator)]
PRB = "/apis/eda.dev/v1alpha1/namespaces/default/projectionrebuilds"
SNAP = "/apis/eda.dev/v1alpha1/namespaces/default/snapshots"
BAK = "/apis/eda.dev/v1alpha1/namespaces/default/backups"


def _kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "kmock", "user": {}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def _eventually(check: Callable[[], Any], timeout: float = 40.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def _reconciles(port: int) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return {
        (s.labels["kind"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eda_operator_reconciles_total"
    }


async def test_reconciles_are_traced_with_the_engine_spans_and_counted(
    kmock: Any, nats_url: str, readmodel_dsn: str, store: JetStreamEventStore, tmp_path: Path
) -> None:
    await seed_orders(store, 1, 30)
    declare(kmock)
    health = free_port()
    async with otlp_receiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
            "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/"))),
            "EDA_NATS_URL": nats_url,
            "EDA_DATABASE_URL": readmodel_dsn,
            "EDA_HEALTH_PORT": str(health),
            "EDA_BACKUP_DIR": str(tmp_path / "volume"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        with (tmp_path / "operator.log").open("ab") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220
                [EDA, "operator"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            async with aiohttp.ClientSession(base_url=str(kmock.url)) as http:
                for kind, path, spec in (
                    ("ProjectionRebuild", PRB, {"projection": "orders", "batchSize": 10}),
                    ("Snapshot", SNAP, {"aggregateType": "order"}),
                    ("Backup", BAK, {"directory": "t1"}),
                ):
                    body = {
                        "apiVersion": "eda.dev/v1alpha1",
                        "kind": kind,
                        "metadata": {"name": "t1", "namespace": "default"},
                    }
                    async with http.post(path, json=body | {"spec": spec}) as resp:
                        assert resp.status < 300, await resp.text()

            def phase(plural: str) -> Any:
                return (
                    kmock.objects[f"eda.dev/v1alpha1/{plural}", "default", "t1"]
                    .get("status", {})
                    .get("phase")
                )

            await _eventually(lambda: phase("projectionrebuilds") == "Succeeded")
            await _eventually(lambda: phase("snapshots") == "Succeeded")
            await _eventually(lambda: phase("backups") == "Succeeded")

            def traced(name: str, child: str) -> bool:
                spans = receiver.spans
                parents = {s.span_id for s in spans if s.name == name and s.service == "eda-operator"}
                return any(s.name == child and s.parent_id in parents for s in spans)

            await _eventually(lambda: traced("reconcile ProjectionRebuild default/t1", "rebuild orders"))
            await _eventually(lambda: traced("reconcile Snapshot default/t1", "snapshot order"))
            await _eventually(lambda: traced("reconcile Backup default/t1", "backup"))
            await _eventually(lambda: traced("backup", "backup EVENTS"))
            reconcile = next(s for s in receiver.spans if s.name.startswith("reconcile ProjectionRebuild"))
            assert reconcile.attributes["eda.reconcile.outcome"] == "succeeded"
            assert reconcile.attributes["k8s.object.name"] == "t1"
            counted = await _reconciles(health)
            assert counted[("ProjectionRebuild", "succeeded")] == 1, counted
            assert counted[("Snapshot", "succeeded")] == 1, counted
            assert counted[("Backup", "succeeded")] == 1, counted
        finally:
            if not await terminate(proc, timeout=20):
                pytest.fail((tmp_path / "operator.log").read_text()[-3000:])
