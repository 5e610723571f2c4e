"""The web console in headless Chromium against the real system (API + projector + saga + workers on
real NATS and PostgreSQL): find an order created through the API, watch its events and saga steps
arrive live, see a cancelled order's compensation, and the health page (with recorded rebuild and
snapshot runs)."""

from __future__ import annotations

import io
import os
import re
import shutil
from typing import Any

import pytest
from console_harness import DOCS_IMG, JAEGER, Console, screenshot_path
from idp_support import Tokens
from rich.console import Console as RichConsole

from app.readmodel import db, runs
from app.readmodel.rebuild import RebuildRequest
from app.runtime import maintenance

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 15_000
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _expect() -> Any:
    from playwright.async_api import expect

    return expect


async def test_order_found_opened_and_followed_live(console: Console, page: Any) -> None:
    expect = _expect()
    order_id = await console.create_order(
        {"user_id": 123, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98},
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )

    await page.goto(f"{console.url}/ui")
    await expect(page.locator("#live-indicator")).to_contain_text("Live")
    await page.get_by_label("Search").fill(str(order_id))
    await page.get_by_role("button", name="Apply").click()
    row = page.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row).to_contain_text("created")
    await row.get_by_role("link", name=f"#{order_id}").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{order_id}")
    events = page.locator("#events tbody tr")
    await expect(events).to_have_count(1)
    # the order's creation starts its saga (issue 16: the saga is a view of the order's events), though
    # no saga process runs yet: its first step shows as running since the order was created
    await expect(page.locator('li.step[data-step="reserve_inventory"]')).to_have_attribute(
        "data-status", "running"
    )
    await page.evaluate("window.__sameDocument = true")  # proves the updates below need no reload

    await console.start_saga()  # the saga now runs while the page watches
    steps = page.locator("#saga li.step")
    await expect(page.locator('li.step[data-step="charge_payment"]')).to_have_attribute(
        "data-status", "running", timeout=LIVE_TIMEOUT_MS
    )
    await page.screenshot(path=screenshot_path("ui-order-detail-running.png"), full_page=True)
    await expect(page.locator("#saga .saga-status")).to_contain_text("completed", timeout=LIVE_TIMEOUT_MS)
    await expect(events).to_have_count(4, timeout=LIVE_TIMEOUT_MS)
    types = await page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.eventType)")
    assert types == ["OrderCreated", "OrderPaid", "OrderShipped", "OrderCompleted"]
    assert await page.evaluate("window.__sameDocument") is True
    names = await steps.evaluate_all("items => items.map(i => i.dataset.step)")
    assert names[:3] == ["reserve_inventory", "charge_payment", "ship_order"]
    for name in ("reserve_inventory", "charge_payment", "ship_order"):
        step = page.locator(f'li.step[data-step="{name}"]')
        await expect(step).to_have_attribute("data-status", "succeeded")
        await expect(step).to_contain_text("Started")
        await expect(step).to_contain_text("Ended")
        await expect(step).to_contain_text("attempt")
    await expect(page.locator(".detail-head .badge")).to_have_text("completed")

    # Event metadata and the payload on demand; the Jaeger link when the event carries a trace.
    first = events.first
    await expect(first.locator("td").nth(0)).to_have_text("1")
    payload = first.locator("pre.payload")
    await expect(payload).to_be_hidden()
    await first.get_by_role("button", name="Show payload").click()
    await expect(payload).to_be_visible()
    await expect(payload).to_contain_text('"user_id": 123')
    trace_link = page.get_by_role("link", name="View trace in Jaeger")
    trace_url = f"{JAEGER}/trace/{TRACE_ID}"
    await expect(trace_link).to_have_attribute("href", trace_url)
    await expect(first.get_by_role("link", name="trace")).to_have_attribute(
        "href", f"{JAEGER}/trace/{TRACE_ID}"
    )

    shot = screenshot_path("ui-order-detail.png")
    await page.screenshot(path=shot, full_page=True)
    if os.environ.get("EDA_UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture on request only
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG / "ui-order-detail.png")


async def test_cancelled_order_shows_compensation(console: Console, page: Any) -> None:
    expect = _expect()
    await console.start_saga()
    # user 666's shipments fail (EDA_SHIPPING_FAIL_USER_IDS): refund + release, then cancelled
    order_id = await console.create_order({"user_id": 666, "items": [{"product_id": 7, "quantity": 1}]})
    await page.goto(f"{console.url}/ui/orders/{order_id}")
    await expect(page.locator("#saga .saga-status")).to_contain_text("cancelled", timeout=LIVE_TIMEOUT_MS)
    await expect(page.locator(".detail-head .badge")).to_have_text("cancelled", timeout=LIVE_TIMEOUT_MS)
    compensations = page.locator("#saga li.step.compensation")
    await expect(compensations).not_to_have_count(0)
    names = await compensations.evaluate_all("items => items.map(i => i.dataset.step)")
    assert "refund_payment" in names, names
    assert "release_inventory" in names, names
    for name in ("refund_payment", "release_inventory"):
        step = page.locator(f'li.step[data-step="{name}"]')
        await expect(step).to_contain_text("compensation")
        await expect(step).to_have_attribute("data-status", "succeeded")
    await expect(page.locator('li.step[data-step="ship_order"]')).to_have_attribute("data-status", "failed")
    types = await page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.eventType)")
    assert types[0] == "OrderCreated", types
    assert types[-1] == "OrderCancelled", types
    await page.screenshot(path=screenshot_path("ui-order-cancelled.png"), full_page=True)


async def test_orders_list_filters_and_live_rows(console: Console, page: Any) -> None:
    expect = _expect()
    first = await console.create_order({"user_id": 501, "amount": 10})
    await page.goto(f"{console.url}/ui/orders?user_id=501")
    await expect(page.locator(f'tr[data-order-id="{first}"]')).to_be_visible()
    await expect(page.get_by_label("User id")).to_have_value("501")

    second = await console.create_order({"user_id": 501, "amount": 20})  # arrives over SSE
    await expect(page.locator(f'tr[data-order-id="{second}"]')).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    await expect(page.locator("tbody tr").first).to_have_attribute("data-order-id", str(second))

    await page.get_by_label("Status").select_option("cancelled")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.get_by_text("No orders match these filters.")).to_be_visible()
    assert "status=cancelled" in page.url

    # Keyboard: the skip link is the first stop and moves focus to the main content.
    await page.goto(f"{console.url}/ui/orders")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.screenshot(path=screenshot_path("ui-orders.png"), full_page=True)


async def test_health_page(console: Console, page: Any) -> None:
    expect = _expect()
    await console.create_order({"user_id": 1, "amount": 5})
    await page.goto(f"{console.url}/ui/health")
    projections = page.get_by_role("region", name="Projections table")
    await expect(projections).to_contain_text("orders", timeout=LIVE_TIMEOUT_MS)
    await expect(page.get_by_role("region", name="Consumers table")).to_contain_text("projector-orders")
    await expect(page.locator("svg.chart polyline")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    chart_label = re.compile(r"^Projection lag over the last 10 minutes.*orders: \d+ events behind")
    await expect(page.locator("svg.chart")).to_have_attribute("aria-label", chart_label)
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    await expect(page.get_by_role("heading", name="Rebuilds")).to_be_visible()
    await page.screenshot(path=screenshot_path("ui-health.png"), full_page=True)


async def test_health_page_lists_rebuild_and_snapshot_runs(console: Console, page: Any) -> None:
    expect = _expect()
    await console.create_order({"user_id": 2, "amount": 3})
    quiet = RichConsole(file=io.StringIO(), width=120)
    result = await maintenance.rebuild(console.settings, RebuildRequest(projection="orders"), quiet)
    assert result.orders >= 1
    pool = await db.create_pool(console.settings.database_url.get_secret_value(), size=1)
    try:  # a run whose process died: left "running", not updated for 5 minutes
        await runs.record_start(
            pool, "crashed", "snapshot", "order", runs.RunSource("operator", "prod", "nightly")
        )
        await pool.execute(
            "UPDATE eda.maintenance_runs SET updated_at = now() - interval '5 minutes' WHERE id = 'crashed'"
        )
    finally:
        await pool.close()

    await page.goto(f"{console.url}/ui/health")
    finished = page.get_by_role("region", name="Finished maintenance runs table")
    await expect(finished).to_contain_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    row = finished.locator("tbody tr").first
    for text in ("rebuild", "orders", "cli", "Succeeded", "100%", f"rebuilt {result.orders} orders"):
        await expect(row).to_contain_text(text)
    bar = page.get_by_label("rebuild orders progress")
    await expect(bar).to_have_attribute("value", "100")
    assert await bar.evaluate("el => el.tagName") == "PROGRESS"
    running = page.get_by_role("region", name="Running maintenance runs table")
    await expect(running).to_contain_text("stalled")
    await expect(running).to_contain_text("operator (prod/nightly)")
    await page.get_by_role("heading", name="Rebuilds and snapshots").scroll_into_view_if_needed()
    await page.screenshot(path=screenshot_path("ui-health-runs.png"), full_page=True)


async def test_narrow_screen_layout(console: Console, browser: Any, tokens: Tokens) -> None:
    expect = _expect()
    order_id = await console.create_order({"user_id": 9, "amount": 1})
    proxy = {"Authorization": f"Bearer {tokens('operator', 'admin:read orders:read:all')}"}
    context = await browser.new_context(viewport={"width": 390, "height": 844}, extra_http_headers=proxy)
    page = await context.new_page()
    try:
        await page.goto(f"{console.url}/ui/orders/{order_id}")
        await expect(page.locator("#events tbody tr")).to_have_count(1)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"page scrolls horizontally at 390px: {width}"
        await page.screenshot(path=screenshot_path("ui-order-detail-mobile.png"), full_page=True)
    finally:
        await context.close()
