"""An HTTP request's credentials → ``Principal``, per the configured mode.

- ``oidc`` (the default): ``Authorization: Bearer <JWT>`` verified by ``TokenVerifier``; anything else
  is 401 with an RFC 6750 challenge.
- ``disabled`` (``EDA_AUTH_MODE=disabled``, only when set explicitly): every request acts with every
  scope; the API warns about it at every start.
- ``anonymous_dev`` (only ``eda dev`` turns it on, in code, never from the environment): a request
  WITHOUT an ``Authorization`` header from a loopback peer acts as the anonymous dev principal with
  every scope, so the seed's tokenless curl works on a developer's machine. A presented token is still
  verified, and a peer that is not loopback still needs one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.auth.errors import AuthError, Unauthenticated
from app.auth.jwks import KeySource
from app.auth.scopes import ALL_SCOPES, ANONYMOUS_SUBJECT, Principal
from app.auth.verifier import ClaimMapping, TokenVerifier
from app.settings import Settings

DISABLED = Principal(subject=ANONYMOUS_SUBJECT, scopes=ALL_SCOPES, kind="auth-disabled")
ANONYMOUS_DEV = Principal(subject=ANONYMOUS_SUBJECT, scopes=ALL_SCOPES, kind="anonymous-dev")


class AuthConfigError(ValueError):
    """The auth settings cannot work (e.g. ``oidc`` without an issuer)."""


def config_error(settings: Settings) -> str | None:
    """Why ``settings`` cannot authenticate anybody, in one line; ``None`` if they can."""
    if settings.auth_mode == "oidc" and not settings.auth_issuer:
        return (
            "EDA_AUTH_ISSUER is not set: the API accepts only tokens of an OIDC issuer "
            "(set EDA_AUTH_ISSUER, or EDA_AUTH_MODE=disabled to run without authentication)"
        )
    return None


def is_loopback(host: str | None) -> bool:
    """Whether the peer address ``host`` is on this machine (127.0.0.0/8 or ::1)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("use the Bearer scheme", token_presented=False)
    token = token.strip()
    if not token or " " in token:
        raise Unauthenticated("the bearer token is malformed")
    return token


_REQUEST_KEY = "eda.principal"


@dataclass
class Authenticator:
    """Authenticates requests; ``verifier`` is ``None`` only in ``disabled`` mode."""

    verifier: TokenVerifier | None
    anonymous_dev: bool = False

    @property
    def disabled(self) -> bool:
        return self.verifier is None

    async def authenticate(self, authorization: str | None, peer: str | None) -> Principal:
        if self.verifier is None:
            return DISABLED
        if authorization is None:
            if self.anonymous_dev and is_loopback(peer):
                return ANONYMOUS_DEV
            raise Unauthenticated("a bearer token is required", token_presented=False)
        return await self.verifier.verify(_bearer(authorization))

    async def authenticate_request(
        self, scope: MutableMapping[str, Any], authorization: str | None
    ) -> Principal:
        """The principal of one request (``scope``: its ASGI scope), memoised on it — a refusal too —
        so the rate limiter, the console's gate and the route verify a token once per request."""
        known: Principal | AuthError | None = scope.get(_REQUEST_KEY)
        if known is None:
            client = scope.get("client")
            try:
                known = await self.authenticate(authorization, client[0] if client else None)
            except AuthError as exc:
                known = exc
            scope[_REQUEST_KEY] = known
        if isinstance(known, AuthError):
            raise known
        return known


def build_authenticator(
    settings: Settings, client: httpx.AsyncClient, *, anonymous_dev: bool = False
) -> Authenticator:
    """The authenticator ``settings`` describe (``AuthConfigError`` if they cannot work)."""
    problem = config_error(settings)
    if problem is not None:
        raise AuthConfigError(problem)
    if settings.auth_mode == "disabled":
        return Authenticator(None)
    assert settings.auth_issuer is not None
    keys = KeySource(
        client,
        issuer=settings.auth_issuer,
        jwks_url=settings.auth_jwks_url,
        refresh_s=settings.auth_jwks_refresh_s,
        cooldown_s=settings.auth_jwks_cooldown_s,
    )
    mapping = ClaimMapping(
        subject=settings.auth_subject_claim,
        scope=settings.auth_scope_claim,
        roles_path=settings.auth_roles_claim,
        role_scopes=settings.auth_role_scopes,
    )
    verifier = TokenVerifier(
        keys,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        algorithms=settings.auth_algorithm_list(),
        leeway_s=settings.auth_leeway_s,
        claims=mapping,
    )
    return Authenticator(verifier, anonymous_dev=anonymous_dev)
