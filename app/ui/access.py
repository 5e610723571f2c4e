"""Who may use the console, and how its page signs in (docs/ui.md § Sign-in, docs/security.md).

The shell, its scripts and styles are public: they hold no data. Everything under ``/ui/api/`` (the
JSON the pages render and the SSE feed) needs what the API needs — a bearer token of the configured
issuer, here with ``admin:read`` — except ``/ui/api/auth``, which tells the page how to get one:

- ``EDA_UI_OIDC_CLIENT_ID`` set (``eda dev`` sets it): the page logs in at the issuer with the
  authorization code flow and PKCE as that public client, keeps the access token in ``sessionStorage``
  and sends it on every call, the SSE feed included (read with ``fetch``: ``EventSource`` cannot send
  headers). The issuer's origin is then allowed in the page's ``connect-src`` (the token exchange).
- unset: an auth proxy in front (oauth2-proxy, Pomerium, an Ingress with auth) forwards the user's
  access token as ``Authorization: Bearer``; the page itself sends none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import Request

from app.auth.errors import InsufficientScope
from app.auth.scopes import Scope
from app.settings import Settings

if TYPE_CHECKING:  # context imports this module: the protocol is only needed for the annotations
    from app.ui.context import UiContext

PUBLIC_API = frozenset({"/ui/api/auth"})


def needs_token(path: str) -> bool:
    return path.startswith("/ui/api/") and path not in PUBLIC_API


async def admit(request: Request, ctx: UiContext) -> None:
    """Authenticate a console data request; ``AuthError`` (401/403/503) if it may not read. The
    principal the rate limiter found for this request is reused (one verification per request)."""
    principal = await ctx.auth.authenticate_request(request.scope, request.headers.get("authorization"))
    if not principal.has(Scope.ADMIN_READ):
        raise InsufficientScope(Scope.ADMIN_READ)


def issuer_origin(settings: Settings) -> str | None:
    """The issuer's origin when the page logs in there itself (for ``connect-src``)."""
    if not settings.ui_oidc_client_id or not settings.auth_issuer or settings.auth_mode != "oidc":
        return None
    parts = urlsplit(settings.auth_issuer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None


async def login_config(ctx: UiContext) -> dict[str, Any]:
    """What the page needs to sign in: ``mode`` and, for a login at the issuer, its endpoints."""
    settings = ctx.settings
    if settings.auth_mode == "disabled":
        return {"mode": "disabled"}
    verifier = ctx.auth.verifier
    if issuer_origin(settings) is None or verifier is None:
        return {"mode": "proxy"}
    discovery = await verifier.keys.discovery()
    return {
        "mode": "login",
        "client_id": settings.ui_oidc_client_id,
        "authorization_endpoint": discovery.get("authorization_endpoint"),
        "token_endpoint": discovery.get("token_endpoint"),
        "scope": "openid admin:read orders:read:all",
    }
