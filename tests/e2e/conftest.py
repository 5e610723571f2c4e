"""E2E fixtures: the API app (real lifespan: NATS, PostgreSQL) over httpx's ASGI transport, with the
projector running in the same loop, trusting the session's OIDC provider (its client sends a token with
every scope unless a test sends its own); and helpers to run roles as separate ``eda`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from idp_support import Tokens

from app.api.main import create_app
from app.dev.idp import DevIdentityProvider
from app.dev.issuer import AUDIENCE
from app.dev.nats import embedded_nats
from app.dev.process import free_port
from app.runtime.bootstrap import prepare
from app.runtime.roles import projector_role
from app.settings import Settings

EDA = str(Path(sys.executable).parent / "eda")


@dataclass
class System:
    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings


@contextlib.asynccontextmanager
async def running_system(
    settings: Settings, *, projector: bool = True, token: str | None = None
) -> AsyncIterator[System]:
    """The API (and projector); ``token``: the client's default bearer token."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(projector_role(settings, health=False)) if projector else None
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers=headers
            ) as client:
                yield System(client, app, settings)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@pytest.fixture
def settings(nats_url: str, js_clean: None, readmodel_dsn: str, auth_settings: dict[str, str]) -> Settings:
    return Settings(nats_url=nats_url, database_url=readmodel_dsn, **auth_settings)  # type: ignore[arg-type]


@pytest.fixture
async def system(settings: Settings, tokens: Tokens) -> AsyncIterator[System]:
    async with running_system(settings, token=tokens.admin()) as sys_:
        yield sys_


def role_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "EDA_NATS_URL": settings.nats_url,
        "EDA_DATABASE_URL": settings.database_url.get_secret_value(),
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        "EDA_AUTH_MODE": settings.auth_mode,
        "EDA_AUTH_AUDIENCE": settings.auth_audience,
    }
    env |= {"EDA_AUTH_ISSUER": settings.auth_issuer} if settings.auth_issuer else {}
    env |= {"EDA_DEFAULT_PRICE": settings.default_price} if settings.default_price else {}
    env |= extra
    return env


@contextlib.contextmanager
def eda_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``eda <args>`` as a child process; SIGTERM (then SIGKILL) at the end."""
    with log.open("ab") as out:
        proc = subprocess.Popen([EDA, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class LiveApi:
    """``eda api`` + ``eda projector`` as processes, trusting the session's provider (console on)."""

    url: str
    idp: DevIdentityProvider


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture(scope="session")
async def live_api(
    database_url: str, idp: DevIdentityProvider, session_data_dir: Path
) -> AsyncIterator[LiveApi]:
    """One API process and one projector process for the session (schemathesis, the auth matrix), on
    a nats-server of their own: other tests empty the shared one (``js_clean``) whenever they like."""
    async with embedded_nats(session_data_dir / "live-api-nats") as nats_server:
        async for live in _live_api(nats_server.url, database_url, idp, session_data_dir):
            yield live


async def _live_api(
    nats_url: str, database_url: str, idp: DevIdentityProvider, data_dir: Path
) -> AsyncIterator[LiveApi]:
    port = free_port()
    env = dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_DATABASE_URL": database_url,
        "EDA_READMODEL_SCHEMA": "rm_live_api",
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        "EDA_MIN_VERSION_WAIT_S": "0.2",
        "EDA_AUTH_ISSUER": idp.issuer,
        "EDA_AUTH_AUDIENCE": AUDIENCE,
        "EDA_AUTH_JWKS_COOLDOWN_S": "0.5",
        "EDA_DEFAULT_PRICE": "99.99",
        "EDA_UI_ENABLED": "true",
        # the auth matrix and schemathesis send hundreds of requests a second from one peer, bad tokens
        # included: no rate limit here (tests/e2e/test_load_limits.py tests it)
        "EDA_RATE_LIMIT": "",
    }
    # what the chart's Jobs do before any role: `eda provision`, `eda migrate`
    await prepare(Settings(nats_url=nats_url, database_url=database_url, readmodel_schema="rm_live_api"))  # type: ignore[arg-type]
    log = data_dir / "live-api.log"
    procs = []
    with log.open("ab") as out:
        for args in (["api", "--host", "127.0.0.1", "--port", str(port)], ["projector"]):
            procs.append(subprocess.Popen([EDA, *args], env=env, stdout=out, stderr=subprocess.STDOUT))  # noqa: ASYNC220
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/readyz")
        yield LiveApi(f"http://127.0.0.1:{port}", idp)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.to_thread(proc.wait, 10)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
