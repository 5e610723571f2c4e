"""``eda operator``: run kopf with this package's handlers (clusterwide unless a namespace is given).

Login uses kopf's defaults: in-cluster service account, else ``KUBECONFIG``/``~/.kube/config``.
Liveness: ``http://0.0.0.0:8080/healthz`` (kopf's probe endpoint). Metrics: ``/metrics`` on
``EDA_HEALTH_PORT`` (8081; reconciles and their durations, see ``eda_operator.observe``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from app.process.health import CheckResult, serve_health
from app.settings import Settings
from app.telemetry import configure_logging, configure_telemetry
from eda_operator.handlers import register

LIVENESS = "http://0.0.0.0:8080/healthz"


async def serve(namespace: str | None = None, *, liveness: str | None = LIVENESS) -> None:
    """Run the operator until cancelled or signalled."""
    settings = Settings()
    configure_logging(settings.log_level)
    configure_telemetry("eda-operator")
    registry = register(kopf.OperatorRegistry())

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account, else KUBECONFIG (kopf's own fallbacks; a private registry has none)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async def checks() -> dict[str, CheckResult]:
        return {}  # readiness is kopf's liveness endpoint; this server is for /metrics

    async with serve_health(settings.health_port, checks):
        await kopf.operator(
            registry=registry,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else (),
            standalone=True,
            liveness_endpoint=liveness,
            memo=kopf.Memo(settings=settings),
        )


def run(namespace: str | None = None) -> None:
    """Blocking entry point of ``eda operator``."""
    asyncio.run(serve(namespace))
