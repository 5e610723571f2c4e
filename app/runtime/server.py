"""The API's HTTP server: uvicorn (httptools, in the running loop) with the shutdown and the load limits
of docs/kubernetes.md § Rollouts and docs/security.md § Abuse limits.

Shutdown (``ApiServer.shutdown``, when the process owner sets ``should_exit``):
1. ``Shutdown.begin()``: ``/readyz`` answers 503, every response says ``Connection: close``, console
   streams end (``app.api.lifecycle``, ``app.ui.streams``);
2. for ``EDA_SHUTDOWN_DRAIN_S`` it keeps accepting and serving (a balancer that learns only from
   ``/readyz`` moves away meanwhile; in Kubernetes the preStop sleep already did this before SIGTERM);
3. uvicorn stops accepting, closes idle connections and lets in-flight requests finish for up to
   ``EDA_SHUTDOWN_GRACE_S`` (longer than an append's 15 s retry), then the lifespan closes the clients.

Load: uvicorn's ``limit_concurrency`` is ``EDA_HTTP_MAX_CONCURRENCY``. Past it uvicorn would answer a
``text/plain`` 503 itself; ``ProblemHttpToolsProtocol`` instead hands such a request to the app marked
``OVERLOADED`` in its scope, and ``app.api.loadlimits.ShedOverload`` answers the RFC 9457 problem
(``/livez`` and ``/readyz`` are served anyway: an overloaded pod must not be restarted by its probes).
``EDA_TRUSTED_PROXIES`` decides whether ``X-Forwarded-For`` names the client (uvicorn's proxy headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.api.loadlimits import OVERLOADED
from app.api.main import app_from_env, dev_app_from_env
from app.process.shutdown import Shutdown
from app.settings import Settings

log = logging.getLogger(__name__)
CLOSE_MARGIN_S = 10.0  # the lifespan's closing of NATS, PostgreSQL, ... after the requests


class _OverloadLogFilter(logging.Filter):
    """Drops uvicorn's one-line-per-refusal warning: counted in ``eda_http_rejections_total``, it would
    flood the log exactly when the process is overloaded."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Exceeded concurrency limit."


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose concurrency-limit refusal is rendered by the app."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is service_unavailable:  # uvicorn's limit_concurrency said no
            cycle.scope[OVERLOADED] = True  # type: ignore[literal-required]
            app = self.app
        super()._start_asgi_task(cycle, app)


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling (the process owner decides when to stop), with the
    drain phase before uvicorn's graceful shutdown."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown, drain_s: float) -> None:
        super().__init__(config)
        self.lifecycle = shutdown
        self.drain_s = drain_s

    @property
    def stop_within_s(self) -> float:
        """How long a stop may take: drain, in-flight requests, closing the clients."""
        return self.drain_s + float(self.config.timeout_graceful_shutdown or 0) + CLOSE_MARGIN_S

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield

    async def shutdown(self, sockets: Any = None) -> None:
        self.lifecycle.begin()
        if self.drain_s > 0:
            log.info("draining %.1f s: /readyz fails, connections close after a response", self.drain_s)
            await asyncio.sleep(self.drain_s)
        await super().shutdown(sockets)


def api_server(settings: Settings, host: str, port: int, *, dev: bool = False) -> ApiServer:
    """The API on uvicorn. The app is built by the factory ``app.api.main.app_from_env`` from the
    ``EDA_*`` environment (``dev`` exports the embedded servers' URLs first, and uses the factory with
    the anonymous loopback principal; it trusts no ``X-Forwarded-For``: "loopback" is the real peer)."""
    shutdown = Shutdown()
    proxies = [] if dev else settings.trusted_proxy_list()
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _OverloadLogFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_OverloadLogFilter())
    config = uvicorn.Config(
        functools.partial(dev_app_from_env if dev else app_from_env, shutdown),
        factory=True,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        host=host,
        port=port,
        http=ProblemHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,  # uvicorn's loggers propagate to the JSON handler of configure_logging
        log_level=settings.log_level.lower(),
        limit_concurrency=settings.http_max_concurrency,
        timeout_keep_alive=settings.http_keepalive_s,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return ApiServer(config, shutdown, settings.shutdown_drain_s)
