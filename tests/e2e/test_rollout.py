"""A rollout, as separate processes (issue 17): SIGTERM to an ``eda api`` under load loses nothing.

Two API processes, A (the pod going away) and B (one that stays), on one nats-server and one database,
with no projector running (a stopped projector must not make them unready). The client is a balancer
in miniature: it sends to A while A looks healthy and moves to B once A's ``/readyz`` fails or A answers
``Connection: close``; a request A refused (connection refused, or a 503 problem with Retry-After) is
sent to B with the same Idempotency-Key.

The contract checked, per request the client sent to A: it got A's complete answer (here always 201 or
the slow read's 200) or a clean refusal — ECONNREFUSED (A never saw it) or a 503 problem with
Retry-After. Never a dropped connection, a timeout, or another 5xx. Per logical write: exactly one
order exists. In flight at SIGTERM: writes stalled by a paused nats-server (their appends complete after
it resumes) and reads that wait 7 s (``?min_version=`` of a version never projected) — longer than the
old 5 s graceful timeout, which cut them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest

from app.dev.nats import NatsServer, embedded_nats
from app.dev.process import free_port
from app.runtime.bootstrap import prepare
from app.runtime.roles import projector_role
from app.settings import Settings
from e2e.conftest import eda_process, role_env, running_system
from tests.support.eventually import eventually, serving

pytestmark = pytest.mark.timeout(120)

ORDERS = "/api/v1/orders"
BODY = {"user_id": 7, "amount": 99.99}
SLOW_READ_S = 7.0  # > the old 5 s graceful timeout


@dataclass
class Ledger:
    """What the client saw from A, and how each logical write ended."""

    at_a: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    orders: dict[str, int] = field(default_factory=dict)  # Idempotency-Key → order id
    a_healthy: bool = True


def _clean_refusal(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and "retry-after" in response.headers
    )


async def _write(a: httpx.AsyncClient, b: httpx.AsyncClient, ledger: Ledger) -> None:
    key = str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    if ledger.a_healthy:
        try:
            response = await a.post(ORDERS, json=BODY, headers=headers)
        except httpx.ConnectError:
            ledger.at_a["refused"] += 1
            ledger.a_healthy = False
        except httpx.TransportError as exc:  # accepted, then dropped: the client cannot know the outcome
            ledger.failures.append(f"A dropped a write: {exc!r}")
            return
        else:
            if response.headers.get("connection") == "close":
                ledger.a_healthy = False  # A is draining: the balancer moves on
            if response.status_code == 201:
                ledger.at_a["201"] += 1
                ledger.orders[key] = response.json()["order_id"]
                return
            if not _clean_refusal(response):
                ledger.failures.append(f"A answered {response.status_code}: {response.text[:200]}")
                return
            ledger.at_a["503"] += 1
    response = await b.post(ORDERS, json=BODY, headers=headers)  # the retry, at the pod that stays
    if response.status_code != 201:
        ledger.failures.append(f"B answered {response.status_code}: {response.text[:200]}")
        return
    ledger.orders[key] = response.json()["order_id"]


async def _writer(a: httpx.AsyncClient, b: httpx.AsyncClient, ledger: Ledger, until: asyncio.Event) -> None:
    while not until.is_set():
        await _write(a, b, ledger)


async def _health_checker(a: httpx.AsyncClient, ledger: Ledger, seen: list[str]) -> None:
    """A balancer's health check of A: the first failure takes A out of rotation."""
    while True:
        try:
            ready = await a.get("/readyz")
            seen.append(f"{ready.status_code}:{ready.json().get('type', ready.json().get('status'))}")
            if ready.status_code != 200:
                ledger.a_healthy = False
        except httpx.TransportError as exc:
            seen.append(type(exc).__name__)
            ledger.a_healthy = False
            return
        await asyncio.sleep(0.05)


async def _order_streams(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("EVENTS", subjects_filter="events.order.>")
        return len(info.state.subjects or {})
    finally:
        await nc.close()


async def test_sigterm_under_load_drops_nothing_and_a_stopped_projector_keeps_the_api_ready(
    fresh_db: str, short_tmp: Path
) -> None:
    async with embedded_nats(short_tmp / "nats") as server:
        settings = Settings(
            nats_url=server.url, database_url=fresh_db, auth_mode="disabled", default_price="99.99"
        )  # type: ignore[arg-type]
        await prepare(settings)  # what the chart's Jobs do before any role: eda provision, eda migrate
        env = role_env(
            settings,
            EDA_SHUTDOWN_DRAIN_S="1.5",
            EDA_SHUTDOWN_GRACE_S="20",
            EDA_MIN_VERSION_WAIT_S=str(SLOW_READ_S),
            EDA_PROJECTION_LAG_DEGRADED="5",
        )
        port_a, port_b = free_port(), free_port()
        log = short_tmp / "api.log"
        with (
            eda_process(["api", "--host", "127.0.0.1", "--port", str(port_a)], env, log) as proc_a,
            eda_process(["api", "--host", "127.0.0.1", "--port", str(port_b)], env, log),
        ):
            limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_a}", timeout=40, limits=limits) as a,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_b}", timeout=40, limits=limits) as b,
            ):
                try:
                    await asyncio.gather(serving(a, "/readyz", timeout=40), serving(b, "/readyz", timeout=40))
                    await _projector_ran_then_stopped(settings, b)
                    await _rollout(server, proc_a, a, b)
                    await _stopped_projector_keeps_b_ready(b)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n--- API log tail:\n{log.read_text()[-4000:]}") from exc


async def _projector_ran_then_stopped(settings: Settings, b: httpx.AsyncClient) -> None:
    """The projector's durable consumer exists (so lag is measurable), then the projector stops."""
    projector = asyncio.create_task(projector_role(settings, health=False))
    first = (await b.post(ORDERS, json=BODY)).json()["order_id"]

    async def projected() -> bool:
        read = await b.get(f"{ORDERS}/{first}", params={"min_version": 1})
        return read.headers.get("eda-consistency") == "read-model"

    await eventually(projected, timeout=20, what="the projector to project")
    projector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await projector


async def _rollout(
    server: NatsServer, proc_a: subprocess.Popen[bytes], a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    ledger, seen_ready = Ledger(), []
    stop = asyncio.Event()
    writers = [asyncio.create_task(_writer(a, b, ledger, stop)) for _ in range(6)]
    checker = asyncio.create_task(_health_checker(a, ledger, seen_ready))
    await asyncio.sleep(1.0)
    known = next(iter(ledger.orders.values()))
    slow_reads = [
        asyncio.create_task(a.get(f"{ORDERS}/{known}", params={"min_version": 99})) for _ in range(3)
    ]
    await asyncio.sleep(0.3)
    server.kill(signal.SIGSTOP)  # appends in flight stall
    await asyncio.sleep(0.3)
    sigterm_at = time.monotonic()
    proc_a.send_signal(signal.SIGTERM)
    await asyncio.sleep(1.2)
    server.kill(signal.SIGCONT)
    reads = await asyncio.gather(*slow_reads, return_exceptions=True)
    exit_code = await asyncio.to_thread(proc_a.wait, 40)
    stopped_after = time.monotonic() - sigterm_at
    with pytest.raises(httpx.ConnectError):  # A is gone: a new request is refused, never half-served
        await a.get("/livez")
    stop.set()
    await asyncio.gather(*writers)
    checker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await checker

    assert not ledger.failures, ledger.failures
    assert exit_code == 0
    for read in reads:  # in flight across SIGTERM for ~7 s: answered in full (from the event store)
        assert isinstance(read, httpx.Response), repr(read)
        assert (read.status_code, read.headers.get("eda-consistency")) == (200, "event-store"), read.text
    assert SLOW_READ_S - 1 < stopped_after < 1.5 + 20 + 10, stopped_after  # waited for them, bounded
    assert "503:https://eda.dev/problems/shutting-down" in seen_ready, seen_ready[-12:]  # failed at once
    assert ledger.at_a["201"] > 20, ledger.at_a  # A served real load until it went away
    assert len(ledger.orders) > ledger.at_a["201"]  # ... and B took over
    # exactly one order per logical write: no duplicates from the retries, none lost
    assert len(set(ledger.orders.values())) == len(ledger.orders)
    assert await _order_streams(server.url) == len(ledger.orders) + 1  # + the projector's first


async def _stopped_projector_keeps_b_ready(b: httpx.AsyncClient) -> None:
    ready = await b.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded"
    projection = body["checks"]["projection"]
    assert projection["affects_readiness"] is False
    assert not projection["ok"]
    assert "events behind (degraded above 5)" in projection["detail"]
    metrics = (await b.get("/metrics")).text
    lag = next(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("eda_projection_lag_events{")
    )
    assert lag > 5


async def test_readyz_during_a_nats_stall_leaves_the_api_connection_working(
    fresh_db: str, short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the rollout test: /readyz used nc.flush(timeout=1); nats-py 2.16 cancels the flush's PONG
    future on timeout and the late PONG then kills the client's read loop (InvalidStateError). After one
    probe during a 1.5 s stall the API stayed "connected" but never heard NATS again: every write a 503.
    The timed-out check is one warning naming it, without a traceback (probes of a busy host time out)."""
    async with embedded_nats(short_tmp / "nats") as server:
        settings = Settings(
            nats_url=server.url, database_url=fresh_db, auth_mode="disabled", default_price="99.99"
        )  # type: ignore[arg-type]
        await prepare(settings)  # what the chart's Jobs do before any role: eda provision, eda migrate
        async with running_system(settings, projector=False) as system:
            c = system.client
            assert (await c.post(ORDERS, json=BODY)).status_code == 201
            server.kill(signal.SIGSTOP)
            try:
                with caplog.at_level(logging.WARNING, logger="app.api.routes.health"):
                    stalled = await c.get("/readyz")
                await asyncio.sleep(0.5)
            finally:
                server.kill(signal.SIGCONT)
            assert stalled.status_code == 503
            assert stalled.json()["checks"]["nats"] == {"ok": False, "detail": "timed out"}
            timed_out = [r for r in caplog.records if r.getMessage() == "readiness check nats timed out"]
            assert [r.exc_info for r in timed_out] == [None], caplog.records
            created = await c.post(ORDERS, json=BODY)
            assert created.status_code == 201, created.text
            assert (await c.get("/readyz")).status_code == 200
