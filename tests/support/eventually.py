"""``eventually``: the one way tests wait for something another task or process makes true (and
``serving``: for an HTTP endpoint to answer 200)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import httpx


async def eventually[T](
    probe: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that; after
    ``timeout`` seconds fail with ``AssertionError`` naming ``what`` and the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)


async def serving(client: httpx.AsyncClient, url: str, *, timeout: float = 60.0) -> httpx.Response:
    """Wait until ``url`` answers 200 (a server starting refuses connections first); its response."""

    async def ok() -> httpx.Response | None:
        try:
            resp = await client.get(url)
        except httpx.TransportError:
            return None
        return resp if resp.status_code == 200 else None

    return await eventually(ok, timeout=timeout, interval=0.1, what=f"{url} to answer 200")
