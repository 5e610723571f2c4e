"""The authenticator's modes and claim mapping, without a network (the verifier is never reached here
or gets its claims directly); verification itself is tested against the real provider in
tests/e2e/test_auth.py."""

from __future__ import annotations

import httpx
import pytest

from app.auth.authenticator import ANONYMOUS_DEV, DISABLED, Authenticator, config_error, is_loopback
from app.auth.errors import InsufficientScope, Unauthenticated
from app.auth.jwks import KeySource
from app.auth.verifier import ClaimMapping, TokenVerifier
from app.settings import Settings


def _authenticator(anonymous_dev: bool) -> Authenticator:
    keys = KeySource(httpx.AsyncClient(), issuer="http://127.0.0.1:9")  # never asked in these tests
    return Authenticator(
        TokenVerifier(keys, issuer="http://127.0.0.1:9", audience="eda-api", algorithms=["RS256"]),
        anonymous_dev=anonymous_dev,
    )


async def test_the_anonymous_dev_principal_is_loopback_only_and_only_when_turned_on() -> None:
    dev = _authenticator(anonymous_dev=True)
    assert await dev.authenticate(None, "127.0.0.1") is ANONYMOUS_DEV
    assert await dev.authenticate(None, "::1") is ANONYMOUS_DEV
    for peer in ("10.0.0.5", "192.168.1.2", None, "testclient", "2001:db8::1"):
        with pytest.raises(Unauthenticated):
            await dev.authenticate(None, peer)
    with pytest.raises(Unauthenticated) as missing:
        await _authenticator(anonymous_dev=False).authenticate(None, "127.0.0.1")
    assert missing.value.challenge() == 'Bearer realm="eda"'  # no error code without credentials
    with pytest.raises(Unauthenticated) as basic:
        await dev.authenticate("Basic dXNlcjpwYXNz", "127.0.0.1")  # a presented credential is checked
    assert basic.value.error is None


async def test_disabled_means_every_scope_and_needs_saying() -> None:
    assert await Authenticator(None).authenticate(None, "203.0.113.9") is DISABLED
    assert config_error(Settings()) is not None  # oidc without an issuer: eda api refuses to start
    assert config_error(Settings(auth_mode="disabled")) is None
    with pytest.raises(ValueError, match="auth_algorithms"):
        Settings(auth_algorithms="RS256,HS256")
    with pytest.raises(ValueError, match="auth_algorithms"):
        Settings(auth_algorithms="none")


def test_loopback() -> None:
    assert is_loopback("127.0.0.42")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("localhost")  # a peer address is an address, never a name


def test_claims_map_to_a_subject_and_scopes() -> None:
    keycloak = ClaimMapping(
        subject="customer_id",
        roles_path="realm_access.roles",
        role_scopes={"eda-operator": "orders:read:all admin:read"},
    )
    principal = keycloak.principal(
        {
            "customer_id": 123,
            "scope": "openid orders:write",
            "realm_access": {"roles": ["eda-operator", "orders:cancel:any", "offline_access"]},
        }
    )
    assert principal.subject == "123"
    assert {"orders:write", "orders:read:all", "admin:read", "orders:cancel:any"} <= principal.scopes
    entra = ClaimMapping(scope="scp").principal({"sub": "abc", "scp": ["orders:read", 5]})
    assert entra.scopes == frozenset({"orders:read"})
    for claims in ({}, {"sub": ""}, {"sub": True}, {"sub": ["x"]}):
        with pytest.raises(Unauthenticated):
            ClaimMapping().principal(claims)


def test_insufficient_scope_names_the_scopes_in_its_challenge() -> None:
    refused = InsufficientScope("orders:write", "orders:write:any")
    assert refused.status == 403
    assert 'error="insufficient_scope"' in refused.challenge()
    assert 'scope="orders:write orders:write:any"' in refused.challenge()
    assert '"' not in Unauthenticated('a "quoted" \\ text').description


async def test_a_request_is_authenticated_once_and_its_refusal_too() -> None:
    """The rate limiter, the console's gate and the route ask for the same request's principal: the
    answer (a refusal too) is kept on its ASGI scope, so a token is verified once per request."""
    dev = _authenticator(anonymous_dev=True)
    scope: dict[str, object] = {"type": "http", "client": ("127.0.0.1", 5000)}
    first = await dev.authenticate_request(scope, None)
    assert first is ANONYMOUS_DEV
    dev.anonymous_dev = False  # a second evaluation would now refuse: the kept answer is returned
    assert await dev.authenticate_request(scope, None) is first
    with pytest.raises(Unauthenticated):
        await dev.authenticate_request({"type": "http", "client": ("127.0.0.1", 5001)}, None)
    refused: dict[str, object] = {"type": "http", "client": ("127.0.0.1", 5002)}
    with pytest.raises(Unauthenticated) as once:
        await dev.authenticate_request(refused, "Basic dXNlcjpwYXNz")
    with pytest.raises(Unauthenticated) as again:
        await dev.authenticate_request(refused, "Bearer any")  # not verified: the request was refused
    assert again.value is once.value
