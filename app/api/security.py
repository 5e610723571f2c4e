"""The API's side of authentication: who is calling (``Caller``), what a route requires (``requires``),
and the guard of the internal endpoints (``/metrics``, ``/docs``, ``/openapi.json``).

Every ``/api/v1`` route depends on ``caller`` (its router does): the request's ``Authorization`` header
and peer address go through the process's ``Authenticator`` once per request. The ``HTTPBearer``
sub-dependency only documents the scheme in OpenAPI (so ``/docs`` can authorize); parsing and
verification are ``app.auth``'s. Failures are ``AuthError``s, mapped to problems in ``app.api.errors``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import problem_response, to_problem
from app.auth.authenticator import Authenticator
from app.auth.errors import AuthError, InsufficientScope
from app.auth.scopes import Principal
from app.auth.scopes import Scope as AuthScope

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token (JWT) of the configured OIDC issuer; see docs/security.md for scopes.",
)
_UNAUTHORIZED = {"description": "No valid bearer token (see WWW-Authenticate)."}
_FORBIDDEN = {"description": "The token lacks the scope the operation needs (insufficient_scope)."}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: _UNAUTHORIZED, 403: _FORBIDDEN}


def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.ctx.auth
    return auth


async def caller(
    request: Request, _doc: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    """FastAPI dependency: the authenticated caller (401/503 ``AuthError`` otherwise)."""
    auth = _authenticator(request)
    return await auth.authenticate_request(request.scope, request.headers.get("authorization"))


Caller = Annotated[Principal, Depends(caller)]


def requires(*scopes: AuthScope) -> Any:
    """A dependency: the caller must hold one of ``scopes`` (else 403 ``insufficient_scope``)."""

    async def check(principal: Caller) -> Principal:
        if not principal.has_any(*scopes):
            raise InsufficientScope(*scopes)
        return principal

    return Depends(check)


DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class InternalEndpoints:
    """Pure ASGI middleware: ``/metrics`` and the API docs need a token with ``admin:read`` unless
    ``EDA_AUTH_OPEN_ENDPOINTS`` names them (``metrics``, ``docs``)."""

    def __init__(self, app: ASGIApp, open_endpoints: frozenset[str]) -> None:
        self.app = app
        self.guarded = frozenset(
            ({"/metrics"} if "metrics" not in open_endpoints else set())
            | (DOCS_PATHS if "docs" not in open_endpoints else set())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.guarded:
            try:
                await self._admit(scope)
            except AuthError as exc:
                await problem_response(to_problem(exc), scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _admit(scope: Scope) -> None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        auth: Authenticator = scope["app"].state.ctx.auth
        principal = await auth.authenticate_request(scope, header.decode("latin-1") if header else None)
        if not principal.has(AuthScope.ADMIN_READ):
            raise InsufficientScope(AuthScope.ADMIN_READ)
