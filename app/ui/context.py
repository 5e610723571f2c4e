"""What the console needs from the API process, and the guard every console route passes through.

The console is part of the API (no separate deployment): it uses the API's shared clients through the
``UiContext`` protocol (owned here, satisfied by the API's ``AppContext`` on ``app.state``). Every console
response passes ``UiRoute``: a 404 problem+json unless ``EDA_UI_ENABLED=true``, and strict security
headers (no inline scripts, no framing, no referrer) on everything it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import asyncpg
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from nats.aio.client import Client as NATS

from app.auth.authenticator import Authenticator
from app.eventstore.ports import EventStore
from app.settings import Settings
from app.ui import access
from app.ui.live import LiveFeed
from app.ui.streams import StreamSlots

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class UiContext(Protocol):
    """The API's shared clients, as far as the console uses them (read-only)."""

    @property
    def nc(self) -> NATS: ...

    @property
    def store(self) -> EventStore: ...

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def auth(self) -> Authenticator: ...

    @property
    def streams(self) -> StreamSlots: ...

    @property
    def live(self) -> LiveFeed: ...


class ConsoleUnavailable(LookupError):
    """The console is disabled, or the API has no context (yet)."""


def ui_context(request: Request) -> UiContext:
    """The API's context from ``app.state`` (FastAPI dependency)."""
    ctx: UiContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise ConsoleUnavailable("the API context is not ready")
    return ctx


def enabled(request: Request) -> bool:
    """Whether ``EDA_UI_ENABLED`` is set for this API."""
    try:
        return bool(ui_context(request).settings.ui_enabled)
    except ConsoleUnavailable:
        return False


def security_headers(settings: Settings | None, extra_connect: str | None = None) -> dict[str, str]:
    """The headers of every console response; ``extra_connect``: an origin the page may also fetch."""
    if extra_connect is None:
        return SECURITY_HEADERS
    csp = CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {extra_connect}")
    return SECURITY_HEADERS | {"Content-Security-Policy": csp}


def problem(
    status: int, title: str, detail: str, *, slug: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An RFC 9457 problem document (``slug``: its ``https://eda.dev/problems/<slug>`` type, as the API's)."""
    return JSONResponse(
        {
            "type": f"https://eda.dev/problems/{slug}" if slug else "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        media_type="application/problem+json",
        headers=SECURITY_HEADERS | (headers or {}),
    )


def not_found(detail: str = "Not Found") -> JSONResponse:
    return problem(404, "Not Found", detail)


class UiRoute(APIRoute):
    """A console route: 404 unless the console is enabled; a token for its data (``app.ui.access``);
    security headers on every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if not enabled(request):
                return not_found("The web console is disabled (set EDA_UI_ENABLED=true).")
            ctx = ui_context(request)
            if access.needs_token(request.url.path):
                await access.admit(request, ctx)
            response = await handler(request)
            headers = security_headers(ctx.settings, access.issuer_origin(ctx.settings))
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response

        return guarded
