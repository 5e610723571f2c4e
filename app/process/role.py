"""Running a background role (saga, workers): connect, open the event store, serve health on
``EDA_HEALTH_PORT``, run pull loops until SIGTERM/SIGINT, then finish in-flight messages and drain.
``until_signal`` gives a role without its own signal handling (the projector) a clean stop.

Start-up rides through an unavailable NATS or JetStream: right after a cluster starts, during a meta
leader election or while quorum is lost, ``$JS.API`` requests (stream and consumer info) time out
or are answered "unavailable". ``retry_start`` retries the connect and the whole (read-only) set-up
with backoff instead of letting the role die on its first ``nats: timeout``: a role that exits there
leaves its consumer unserved until something restarts it (and ``eda dev`` has nothing that would).
It also waits, saying why, while what the role needs is not there yet: streams and consumers that
``eda provision`` has not created (``NotProvisioned``), a schema ``eda migrate`` has not migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.errors import (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoRespondersError,
    NoServersError,
    StaleConnectionError,
)
from nats.js.errors import APIError

from app.eventstore import jsapi
from app.eventstore.connection import connect_nats
from app.eventstore.consumer import PullLoop
from app.eventstore.required import NotProvisioned
from app.process.gctune import tune_gc
from app.process.health import CheckResult, serve_health
from app.process.signals import on_stop_signal, stop_signals
from app.settings import Settings

log = logging.getLogger(__name__)

_TRANSIENT_ERRORS = (
    TimeoutError,  # nats.errors.TimeoutError ("nats: timeout") is one
    NoRespondersError,
    NoServersError,
    ConnectionClosedError,
    ConnectionReconnectingError,
    StaleConnectionError,
    OSError,
)
START_FIRST_DELAY_S = 0.25
START_MAX_DELAY_S = 5.0


class StartAborted(Exception):
    """The role was asked to stop before it finished starting."""


def transient_start_error(exc: BaseException) -> bool:
    """An error that goes away once NATS/JetStream is reachable and has its leaders (``retry_start``
    waits for ``NotProvisioned`` — what the provisioning run has yet to create — on its own)."""
    if isinstance(exc, APIError):
        # "not now": cluster unavailable, insufficient resources, stream offline; and any 5xx
        return (exc.code or 0) >= 500 or exc.err_code in jsapi.TRANSIENT_API_ERRORS
    return isinstance(exc, _TRANSIENT_ERRORS)


async def retry_start[T](
    what: str,
    start: Callable[[], Awaitable[T]],
    stopping: asyncio.Event | None = None,
    *,
    max_delay: float = START_MAX_DELAY_S,
    waiting_for: tuple[type[Exception], ...] = (),
) -> T:
    """``await start()`` until it succeeds, retrying transient errors with backoff (0.25 s doubling,
    capped); a permanent error (e.g. an invalid stream config) is raised. ``stopping`` aborts.
    ``waiting_for``: more errors that mean "not yet" (e.g. an unmigrated schema); like
    ``NotProvisioned`` they are logged by their message, which says what to run."""
    delay = START_FIRST_DELAY_S
    attempt = 0
    while True:
        try:
            return await start()
        except Exception as exc:
            waiting = isinstance(exc, (NotProvisioned, *waiting_for))
            if not waiting and not transient_start_error(exc):
                raise
            attempt += 1
            if waiting:
                log.warning("%s: waiting (attempt %d): %s; retrying in %.2f s", what, attempt, exc, delay)
            else:
                log.warning("%s failed (attempt %d: %r); retrying in %.2f s", what, attempt, exc, delay)
        if stopping is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                raise StartAborted(what)
        delay = min(delay * 2, max_delay)


async def start_role(
    role: str,
    loops: Callable[[NATS], Awaitable[list[PullLoop]]],
    settings: Settings,
    stopping: asyncio.Event | None = None,
) -> tuple[NATS, list[PullLoop]]:
    """Connect and set up (streams, consumers, loops), both retried until NATS/JetStream answer."""
    nc = await retry_start(f"{role}: connect", lambda: connect_nats(settings, name=f"eda-{role}"), stopping)
    try:
        pulls = await retry_start(f"{role}: set-up", lambda: loops(nc), stopping)
    except BaseException:
        with contextlib.suppress(Exception):
            await nc.close()
        raise
    return nc, pulls


async def serve_role(
    role: str, loops: Callable[[NATS], Awaitable[list[PullLoop]]], settings: Settings
) -> None:
    """Run ``loops`` until SIGTERM/SIGINT, then finish in-flight messages, drain and close."""
    with stop_signals() as stopping:
        conn: list[NATS] = []

        async def checks() -> dict[str, CheckResult]:
            if not conn:
                return {"nats": CheckResult(False, "starting")}
            nc = conn[0]
            return {"nats": CheckResult(nc.is_connected, "connected" if nc.is_connected else "disconnected")}

        async with serve_health(settings.health_port, checks):  # /livez answers while start-up retries
            try:
                nc, pulls = await start_role(role, loops, settings, stopping)
            except StartAborted:
                log.info("%s stopped before it started", role)
                return
            conn.append(nc)
            tune_gc(settings.gc_gen0_threshold)
            try:
                tasks = [asyncio.create_task(p.run()) for p in pulls]
                log.info("%s running", role)
                waiter = asyncio.create_task(stopping.wait())
                await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for p in pulls:
                    p.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                waiter.cancel()
            finally:
                with contextlib.suppress(Exception):
                    await nc.drain()
        log.info("%s stopped", role)


async def until_signal(role: Awaitable[None]) -> None:
    """Run ``role`` until SIGTERM/SIGINT, then cancel it so its ``finally`` blocks close what it opened
    (a role without its own signal handling, like the projector: killed by SIGTERM's default action it
    exited with 143 — a failed pod to Kubernetes — and left its NATS connection undrained)."""
    task = asyncio.ensure_future(role)
    with on_stop_signal(task.cancel):
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            log.info("stopped by a signal")
