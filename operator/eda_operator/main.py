"""``eda operator``: run kopf with this package's handlers (clusterwide unless a namespace is given).

Login: the in-cluster service account, else ``KUBECONFIG``/``~/.kube/config`` (``eda_operator.login``);
the credentials used are logged before kopf starts; none at all, or credentials the API rejects, end it
with ``NoCredentials`` (one line).
Liveness: ``http://0.0.0.0:<health_port>/healthz`` (kopf's probe endpoint; 8080 by default). Metrics:
``/metrics`` on ``EDA_HEALTH_PORT`` (8081; reconciles and their durations, see ``eda_operator.observe``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from app.process.health import CheckResult, serve_health
from app.settings import Settings
from app.telemetry import configure_logging, configure_telemetry
from eda_operator.handlers import register
from eda_operator.login import NoCredentials, register_login, resolve

HEALTH_PORT = 8080
log = logging.getLogger(__name__)


async def serve(namespace: str | None = None, *, health_port: int | None = HEALTH_PORT) -> None:
    """Run the operator until cancelled or signalled (no liveness endpoint when ``health_port`` is None);
    ``NoCredentials`` when there is nothing to log in with (before kopf starts) or the API rejects it."""
    settings = Settings()
    configure_logging(settings.log_level)
    login = resolve(kopf.OperatorSettings())
    log.info("logging in to the %s", login.describe())
    configure_telemetry("eda-operator")
    registry = register(register_login(kopf.OperatorRegistry()))

    async def checks() -> dict[str, CheckResult]:
        return {}  # readiness is kopf's liveness endpoint; this server is for /metrics

    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port is not None else None
    # One namespace (the chart's default, with a Role there): no cluster-wide listing or watching of
    # namespaces and CRDs, which a Role forbids (kopf would log 403 warnings, then fall back to exactly
    # this namespace anyway); the custom resources are still discovered once at start-up.
    kopf_settings = kopf.OperatorSettings()
    kopf_settings.scanning.disabled = namespace is not None
    asyncio.get_running_loop().set_exception_handler(_unless_login_error)
    try:
        async with serve_health(settings.health_port, checks):
            await kopf.operator(
                registry=registry,
                settings=kopf_settings,
                clusterwide=namespace is None,
                namespaces=[namespace] if namespace else (),
                standalone=True,
                liveness_endpoint=liveness,
                memo=kopf.Memo(settings=settings),
            )
    except kopf.LoginError as exc:  # every credential answered 401: kopf gives up ("Ran out of ...")
        raise NoCredentials(f"the Kubernetes API {login.info.server} rejected {login.source}") from exc


def _unless_login_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """kopf leaves the LoginError of its API scan in a task nobody awaits; it is reported once, as
    ``NoCredentials``, not again as "Task exception was never retrieved" with a traceback."""
    if not isinstance(context.get("exception"), kopf.LoginError):
        loop.default_exception_handler(context)


def run(namespace: str | None = None, *, health_port: int = HEALTH_PORT) -> None:
    """Blocking entry point of ``eda operator``."""
    asyncio.run(serve(namespace, health_port=health_port))
