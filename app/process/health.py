"""A tiny health and metrics HTTP server for roles without an API (projector, saga, workers).

Usage::

    async def checks() -> dict[str, CheckResult]:
        return {"nats": CheckResult(nc.is_connected), "postgres": CheckResult(True, "ok")}

    async with serve_health(settings.health_port, checks, registry=my_registry) as port:
        await run_role()

Endpoints: ``GET /livez`` → 200 while the process runs; ``GET /readyz`` → 200 if every check is ok,
else 503, body ``{"status": ..., "checks": {name: {"ok": bool, "detail": str}}}``; ``GET /metrics`` →
Prometheus text of ``registry`` (default: the process-wide default registry). Port 0 picks a free port
(the context manager yields the bound port). Plain asyncio streams: no framework, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One readiness check."""

    ok: bool
    detail: str = ""


Checks = Callable[[], Awaitable[dict[str, CheckResult]]]


async def run_checks(checks: Checks, timeout: float = 3.0) -> tuple[bool, dict[str, dict[str, object]]]:
    """Run ``checks`` (bounded by ``timeout``); returns (all ok, JSON-ready results)."""
    try:
        results = await asyncio.wait_for(checks(), timeout)
    except Exception as exc:
        results = {"checks": CheckResult(False, f"{type(exc).__name__}: {exc}")}
    body = {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}
    return all(r.ok for r in results.values()), body


def _response(status: int, reason: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, checks: Checks, registry: CollectorRegistry
) -> None:
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        path = path.split("?", 1)[0]
        if method != "GET":
            out = _response(405, "Method Not Allowed", b"", "text/plain")
        elif path == "/livez":
            out = _response(200, "OK", b'{"status":"alive"}', "application/json")
        elif path == "/readyz":
            ok, body = await run_checks(checks)
            payload = orjson.dumps({"status": "ready" if ok else "not ready", "checks": body})
            out = _response(
                200 if ok else 503, "OK" if ok else "Service Unavailable", payload, "application/json"
            )
        elif path == "/metrics":
            out = _response(200, "OK", generate_latest(registry), CONTENT_TYPE_LATEST)
        else:
            out = _response(404, "Not Found", b"", "text/plain")
        writer.write(out)
        await writer.drain()
    except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_health(
    port: int, checks: Checks, *, host: str = "0.0.0.0", registry: CollectorRegistry | None = None
) -> AsyncIterator[int]:
    """Serve ``/livez``, ``/readyz`` and ``/metrics`` on ``host:port`` for the duration of the block."""
    reg = registry or REGISTRY
    server = await asyncio.start_server(lambda r, w: _handle(r, w, checks, reg), host, port)
    bound = int(server.sockets[0].getsockname()[1])
    log.info("health server on %s:%d", host, bound)
    try:
        yield bound
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)
