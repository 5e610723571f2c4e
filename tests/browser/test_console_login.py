"""The console signs in at the OIDC provider itself (authorization code + PKCE, as ``eda dev`` does):
without a token its data is refused, the page offers "Sign in", the provider's real login page takes
the operator's password, and back on the console the orders load with the token from the code
exchange — and the live feed follows with it. An access token about to expire is renewed with the
provider's refresh token before the request that would carry it; a refused renewal asks to sign in."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from console_harness import Console, screenshot_path
from idp_support import Tokens

from app.dev.issuer import OPERATOR

# In the page: make the stored access token look expired (the page reads exp; the API would refuse it).
EXPIRE = r"""() => {
  const token = sessionStorage.getItem("eda.console.token");
  const [head, payload, signature] = token.split(".");
  const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
  claims.exp = Math.floor(Date.now() / 1000) - 10;
  const encoded = btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  sessionStorage.setItem("eda.console.token", [head, encoded, signature].join("."));
  return token;
}"""
EXP = """() => JSON.parse(atob(sessionStorage.getItem("eda.console.token").split(".")[1]
  .replace(/-/g, "+").replace(/_/g, "/"))).exp"""


async def test_sign_in_at_the_provider_with_pkce(console: Console, browser: Any, tokens: Tokens) -> None:
    expect = pytest.importorskip("playwright.async_api").expect
    client_id = f"console-{uuid.uuid4().hex[:8]}"
    tokens.issuer.add_public_client(client_id, f"{console.url}/ui/")
    console.settings.ui_oidc_client_id = client_id  # the running app reads its settings per request
    order_id = await console.create_order({"user_id": 42, "amount": 12.5})
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: Any) -> None:  # the console's own errors; the provider's page is not ours
        ours = str(message.location.get("url", "")).startswith(console.url)
        if message.type == "error" and ours and "401" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    try:
        refused = await page.request.get(f"{console.url}/ui/api/orders")
        assert refused.status == 401
        await page.goto(f"{console.url}/ui/orders")
        sign_in = page.get_by_role("button", name="Sign in")
        await expect(sign_in).to_be_visible()
        await sign_in.click()
        await page.wait_for_url(f"{tokens.issuer.issuer}/**")
        await page.fill("#username", OPERATOR)
        await page.fill("#password", tokens.issuer.users[OPERATOR])
        await page.get_by_role("button").first.click()
        await page.wait_for_url(f"{console.url}/ui/orders*")
        await expect(page.get_by_text(f"Signed in as {OPERATOR}")).to_be_visible()
        await expect(page.get_by_role("link", name=f"#{order_id}").first).to_be_visible()
        await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
        second = await console.create_order({"user_id": 43, "amount": 1})
        await expect(page.get_by_role("link", name=f"#{second}").first).to_be_visible()  # over SSE
        await page.screenshot(path=screenshot_path("ui-signed-in.png"))

        # renewal: the page holds the provider's refresh token; an expiring access token is renewed
        assert await page.evaluate('() => sessionStorage.getItem("eda.console.refresh")')
        first = await page.evaluate(EXPIRE)
        await page.reload()
        await expect(page.get_by_role("link", name=f"#{second}").first).to_be_visible()
        await expect(page.get_by_text(f"Signed in as {OPERATOR}")).to_be_visible()
        renewed = await page.evaluate('() => sessionStorage.getItem("eda.console.token")')
        assert renewed not in {first, None}
        assert await page.evaluate(EXP) > time.time() + 60
        await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")

        # a renewal the provider refuses: the page forgets the token and asks to sign in again
        await page.evaluate('() => sessionStorage.setItem("eda.console.refresh", "not-a-refresh-token")')
        await page.evaluate(EXPIRE)
        await page.reload()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert await page.evaluate('() => sessionStorage.getItem("eda.console.refresh")') is None
    finally:
        await context.close()
    assert not [e for e in errors if "ERR_INCOMPLETE_CHUNKED_ENCODING" not in e], errors
