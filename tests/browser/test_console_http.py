"""The console over plain HTTP (no browser needed): off switch, security headers, static files, read-only
routes kept out of the OpenAPI schema, the SSE feed from JetStream with ``Last-Event-ID`` resume."""

from __future__ import annotations

import asyncio
import re

import orjson
from console_harness import Console

PROBLEM = "application/problem+json"


async def test_security_headers_and_no_inline_code(console: Console) -> None:
    response = await console.client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert " style=" not in html
    assert "password" not in html.lower()
    for path in ("/ui/orders", "/ui/orders/5", "/ui/health"):
        page = await console.client.get(path)
        assert page.status_code == 200
        assert page.text == html


async def test_static_assets_and_no_traversal(console: Console) -> None:
    js = await console.client.get("/ui/static/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" in js.headers
    css = await console.client.get("/ui/static/app.css")
    assert css.headers["content-type"].startswith("text/css")
    bad = ("/ui/static/../router.py", "/ui/static/%2e%2e/router.py", "/ui/static/nope.js", "/ui/static/")
    await _not_found(console, bad)


async def _not_found(console: Console, paths: tuple[str, ...], *, problem: bool = False) -> None:
    for path in paths:
        response = await console.client.get(path)
        assert response.status_code == 404, path
        if problem:
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["status"] == 404


async def test_off_unless_enabled(console: Console) -> None:
    console.settings.ui_enabled = False  # the running app reads its settings per request
    try:
        paths = (
            "/ui",
            "/ui/orders/1",
            "/ui/static/app.js",
            "/ui/api/orders",
            "/ui/api/health",
            "/ui/api/stream",
        )
        await _not_found(console, paths, problem=True)
    finally:
        console.settings.ui_enabled = True


async def test_read_only_and_not_in_openapi(console: Console) -> None:
    for path in ("/ui/api/orders", "/ui/api/orders/1", "/ui/api/stream", "/ui"):
        response = await console.client.post(path, json={})
        assert response.status_code in (404, 405), path
    schema = (await console.client.get("/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith("/ui")]


async def test_orders_api_search_and_unknown_order(console: Console) -> None:
    ids = [await console.create_order({"user_id": 700 + i, "amount": 1}) for i in range(3)]
    last = await console.client.get("/ui/api/orders", params={"limit": 2, "min_sequence": 3})
    page = last.json()
    assert [o["order_id"] for o in page["items"]] == [ids[2], ids[1]]
    older = (
        await console.client.get("/ui/api/orders", params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [o["order_id"] for o in older["items"]] == [ids[0]]
    assert older["next_cursor"] is None
    found = (await console.client.get("/ui/api/orders", params={"q": "701"})).json()
    assert [o["user_id"] for o in found["items"]] == [701]
    bad = await console.client.get("/ui/api/orders", params={"status": "nope"})
    assert bad.status_code == 422
    missing = await console.client.get("/ui/api/orders/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


async def _read_events(
    console: Console, headers: dict[str, str], want: int, subscribed: asyncio.Event | None = None
) -> list[tuple[str, dict[str, object]]]:
    """The first ``want`` events of the feed; ``subscribed`` is set on its ``hello`` (sent once the
    feed's consumer exists: from then on every new event reaches it)."""
    got: list[tuple[str, dict[str, object]]] = []
    async with console.client.stream("GET", "/ui/api/stream", headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = ""
        async for line in response.aiter_lines():
            if line == "event: hello" and subscribed is not None:
                subscribed.set()
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: ") and event_id:
                got.append((event_id, orjson.loads(line[6:])))
                event_id = ""
                if len(got) >= want:
                    break
    return got


async def test_sse_feed_from_jetstream_with_resume(console: Console) -> None:
    subscribed = asyncio.Event()
    reader = asyncio.create_task(_read_events(console, {}, 2, subscribed))
    await asyncio.wait_for(subscribed.wait(), 10)  # the feed delivers new events only
    first = await console.create_order({"user_id": 1, "amount": 1})
    second = await console.create_order({"user_id": 2, "amount": 2})
    events = await asyncio.wait_for(reader, 10)
    assert [e["aggregate_id"] for _, e in events] == [str(first), str(second)]
    assert {e["type"] for _, e in events} == {"OrderCreated"}
    # A reconnecting browser sends Last-Event-ID: the feed resumes right after it.
    resumed = await asyncio.wait_for(_read_events(console, {"Last-Event-ID": events[0][0]}, 1), 10)
    assert resumed[0][0] == events[1][0]


async def test_odd_digits_and_huge_ids_are_4xx_not_500(console: Console) -> None:
    """Review holes: ``str.isdigit()`` accepts "²" (``int()`` does not), and ids past int64 reached
    PostgreSQL (DataError); each was a 500."""
    search = await console.client.get("/ui/api/orders", params={"q": "²"})  # text, too short to search
    assert search.status_code == 422, search.text
    assert search.headers["content-type"] == PROBLEM
    assert search.json()["type"].endswith("/search-too-short")
    assert (await console.client.get("/ui/api/orders", params={"q": "²²²"})).json()["items"] == []
    for order_id in (str(2**63), str(2**64 + 5), "0"):
        response = await console.client.get(f"/ui/api/orders/{order_id}")
        assert response.status_code in (404, 422), (order_id, response.text)
        assert response.headers["content-type"] == PROBLEM
    headers = {"Last-Event-ID": "²".encode("latin-1")}  # a server decodes header bytes as latin-1
    async with console.client.stream("GET", "/ui/api/stream", headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            assert line.startswith(("retry", "event", "data", "")), line
            if line.startswith("data: "):
                break  # the hello message: the feed started (from new events)
