"""Fixtures of the browser tests: the whole system in this event loop — the API (uvicorn on a free port,
console enabled, trusting the session's OIDC provider), the projector, and on demand the saga with its
three workers — on the session's real nats-server and a fresh PostgreSQL database; plus headless
Chromium driven by Playwright. The ``page`` sends an operator's token on every request, as an auth
proxy in front of the console would (test_console_login.py signs in at the provider instead).

Chromium comes from Debian (``apt-get install chromium``); tests skip with the reason if it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from console_harness import CHROMIUM, CHROMIUM_ARGS, JAEGER, Console, free_port
from idp_support import Tokens

from app.api.main import create_app
from app.eventstore.jetstream import open_event_store
from app.readmodel.projector import Projector
from app.settings import Settings


class QuietServer(uvicorn.Server):
    """uvicorn without signal handlers (the test owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def console(
    nats_url: str, readmodel_dsn: str, js_clean: None, auth_settings: dict[str, str], tokens: Tokens
) -> AsyncIterator[Console]:
    """API with the console on + projector running; the saga is started by the test (``start_saga``)."""
    settings = Settings(
        nats_url=nats_url,
        database_url=readmodel_dsn,
        ui_enabled=True,
        jaeger_ui_url=JAEGER,
        default_stock=1000,
        health_port=0,
        payment_fault_delay_s=1.0,
        shipping_fail_user_ids="666",
        saga_step_timeout_s=10.0,
        log_level="WARNING",
        **auth_settings,  # type: ignore[arg-type]
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    nc = await nats.connect(nats_url)
    store = await open_event_store(nc, settings)
    projector = asyncio.create_task(
        Projector(nc, store.codec, readmodel_dsn, settings.readmodel_schema).run()
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {tokens.admin()}"}
    async with httpx.AsyncClient(base_url=url, timeout=10.0, headers=headers) as client:
        system = Console(settings=settings, url=url, client=client)
        try:
            yield system
        finally:
            await system.stop()
            projector.cancel()
            server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(serving, projector, return_exceptions=True), 15)
            await store.close()
            await nc.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium through Playwright (skips when Chromium is not installed)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); browser tests skipped")
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright's Python package is missing"
    )
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any, tokens: Tokens) -> AsyncIterator[Any]:
    """A fresh page (1280 x 900) whose requests carry an operator's token, as an auth proxy forwards
    it; console errors and CSP violations fail the test."""
    proxy = {"Authorization": f"Bearer {tokens('operator', 'admin:read orders:read:all')}"}
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, extra_http_headers=proxy)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    noise = [p for p in problems if "ERR_INCOMPLETE_CHUNKED_ENCODING" not in p]
    assert not noise, f"browser console errors: {noise}"
