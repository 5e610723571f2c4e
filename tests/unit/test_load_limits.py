"""The load limits' pieces without servers (issue 17): who a client is for the rate limit (peer, or the
X-Forwarded-For of a trusted proxy only, through uvicorn's own proxy-headers middleware as
``api_server`` configures it), the uvicorn configuration, and the console's stream slots at shutdown.
The end-to-end behaviour is tests/e2e/test_load_limits.py and test_rollout.py."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api.loadlimits import RateLimit
from app.api.metrics import ApiMetrics
from app.auth.authenticator import Authenticator
from app.process.shutdown import Shutdown
from app.runtime.server import ProblemHttpToolsProtocol, api_server
from app.settings import Settings
from app.ui.streams import StreamSlots, until_shutdown


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


APP = SimpleNamespace(
    state=SimpleNamespace(ctx=SimpleNamespace(auth=Authenticator(None), metrics=ApiMetrics()))
)


async def call(app: Any, peer: str, forwarded: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/orders",
        "headers": headers,
        "client": (peer, 40000),
        "scheme": "http",
        "app": APP,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers_out = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], headers_out, b"".join(m.get("body", b"") for m in sent[1:])


async def test_clients_are_peers_unless_a_trusted_proxy_names_them() -> None:
    limited = RateLimit(ok, default="2/minute", trusted="2/minute")  # auth disabled: trusted limit
    app = ProxyHeadersMiddleware(limited, trusted_hosts=["10.0.0.0/8"])
    assert [(await call(app, "192.0.2.1"))[0] for _ in range(3)] == [200, 200, 429]
    assert (await call(app, "192.0.2.2"))[0] == 200  # another peer, another bucket
    # behind the trusted proxy, each forwarded client has its own bucket
    for client in ("198.51.100.7", "198.51.100.8"):
        assert [(await call(app, "10.1.2.3", client))[0] for _ in range(2)] == [200, 200]
    assert (await call(app, "10.1.2.3", "198.51.100.7"))[0] == 429
    # an untrusted peer cannot pick a bucket by sending X-Forwarded-For: it is its own address
    spoofed = [(await call(app, "203.0.113.9", f"198.51.100.{i}"))[0] for i in range(20, 23)]
    assert spoofed == [200, 200, 429]
    status, headers, body = await call(app, "203.0.113.9")
    problem = orjson.loads(body)
    assert (status, headers["content-type"], problem["type"]) == (
        429,
        "application/problem+json",
        "https://eda.dev/problems/rate-limited",
    )
    assert 1 <= int(headers["retry-after"]) <= 60


async def test_an_empty_limit_is_off() -> None:
    app = RateLimit(ok, default="", trusted="")
    assert {(await call(app, "192.0.2.1"))[0] for _ in range(50)} == {200}


def test_uvicorn_is_configured_from_the_settings() -> None:
    settings = Settings(
        trusted_proxies="10.0.0.0/8, 192.168.1.1",
        http_max_concurrency=300,
        http_keepalive_s=90,
        shutdown_grace_s=25,
        shutdown_drain_s=2,
    )  # type: ignore[call-arg]
    server = api_server(settings, "127.0.0.1", 0)
    config = server.config
    assert (config.proxy_headers, config.forwarded_allow_ips) == (True, ["10.0.0.0/8", "192.168.1.1"])
    assert (config.limit_concurrency, config.timeout_keep_alive, config.timeout_graceful_shutdown) == (
        300,
        90,
        25,
    )
    assert config.http is ProblemHttpToolsProtocol
    assert server.stop_within_s == 2 + 25 + 10
    assert api_server(Settings(), "127.0.0.1", 0).config.proxy_headers is False  # trust nobody by default
    assert api_server(settings, "127.0.0.1", 0, dev=True).config.proxy_headers is False


def test_the_stream_cap_is_at_most_half_the_connection_limit() -> None:
    assert Settings(ui_max_streams=100, http_max_concurrency=512).stream_cap() == 100  # type: ignore[call-arg]
    assert Settings(ui_max_streams=100, http_max_concurrency=48).stream_cap() == 24  # type: ignore[call-arg]


async def test_streams_are_capped_released_and_ended_at_shutdown() -> None:
    shutdown, refused = Shutdown(), []
    slots = StreamSlots(2, shutdown, lambda: refused.append(1))
    closed: list[int] = []

    async def endless(n: int):  # type: ignore[no-untyped-def]
        try:
            while True:
                yield f"{n}\n".encode()
                await asyncio.sleep(0.01)
        finally:
            closed.append(n)

    first, second = slots.open(endless(1)), slots.open(endless(2))
    assert first is not None
    assert second is not None
    assert slots.open(endless(3)) is None
    assert (slots.active, len(refused)) == (2, 1)

    async def receive() -> Message:
        await asyncio.Event().wait()  # the browser stays
        return {"type": "http.disconnect"}

    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        chunks.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/ui/api/stream"}
    running = [asyncio.create_task(r(scope, receive, send)) for r in (first, second)]
    await asyncio.sleep(0.1)
    shutdown.begin()  # both streams end by themselves, their sources closed, their slots free
    await asyncio.wait_for(asyncio.gather(*running), 2)
    assert (sorted(closed), slots.active) == ([1, 2], 0)
    assert slots.open(endless(4)) is None  # no new stream once shutting down
    assert any(chunks)


async def test_until_shutdown_closes_a_source_that_waits() -> None:
    shutdown, closed = Shutdown(), asyncio.Event()

    async def silent():  # type: ignore[no-untyped-def]
        try:
            await asyncio.Event().wait()
            yield b""
        finally:
            closed.set()

    stream = until_shutdown(silent(), shutdown)
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    shutdown.begin()
    with contextlib.suppress(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)
    assert closed.is_set()
