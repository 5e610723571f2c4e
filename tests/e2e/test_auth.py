"""Authentication and authorization end to end: a live ``eda api`` (+ projector) trusting the session's
real OIDC provider (a NanoIDP process): every route x every way a request can lack a valid token gives
the documented 401 problem with an RFC 6750 challenge, a token without the route's scope a 403
``insufficient_scope``, another customer's order a 404 — never a 5xx; ownership, prices and the seed
flow with tokens; the JWKS cache (cooldown, rotation, unreachable issuer); garbage headers."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idp_support import Tokens

from app.auth.errors import IssuerUnavailable, Unauthenticated
from app.auth.jwks import KeySource
from app.auth.scopes import CUSTOMER_SCOPES, OPERATOR_SCOPES
from app.dev.issuer import AUDIENCE
from app.dev.process import free_port
from e2e.conftest import LiveApi, running_system
from e2e.helpers import assert_problem

CUSTOMER = " ".join(sorted(CUSTOMER_SCOPES))
OPERATOR = " ".join(sorted(OPERATOR_SCOPES))
ORDER = "{order}"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: dict[str, Any] | None = None
    lacking: str | None = None  # a scope that is NOT enough for this route (403), if any


ROUTES = [
    Route("POST", "/api/v1/orders", {"items": [{"product_id": 1, "quantity": 1}]}, "orders:read"),
    Route("GET", "/api/v1/orders", None, "inventory:write"),
    Route("GET", f"/api/v1/orders/{ORDER}", None, "inventory:write"),
    Route("GET", f"/api/v1/orders/{ORDER}/events", None, "catalog:write"),
    Route("GET", f"/api/v1/orders/{ORDER}/saga", None, "admin:read"),
    Route("POST", f"/api/v1/orders/{ORDER}/cancel", {"reason": "test"}, "orders:read"),
    Route("GET", "/api/v1/inventory/1"),
    Route("PUT", "/api/v1/inventory/1", {"stock": 5}, "orders:write"),
    Route("GET", "/api/v1/catalog/1"),
    Route("PUT", "/api/v1/catalog/1", {"price": 99.99}, "inventory:write"),
    Route("GET", "/api/v1/admin/dead-letters", None, "orders:read:all"),
    Route("GET", "/ui/api/orders", None, "orders:read:all"),
    Route("GET", f"/ui/api/orders/{ORDER}", None, "orders:read"),
    Route("GET", "/ui/api/health", None, "orders:write"),
    Route("GET", "/ui/api/stream", None, "orders:read"),
    Route("GET", "/metrics", None, "orders:read:all"),
    Route("GET", "/openapi.json", None, "orders:read"),
    Route("GET", "/api/v1/catalog"),
]
ORDER_ROUTES = [r for r in ROUTES if r.path.startswith("/api/v1/orders/")]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _payload(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _bad_tokens(tokens: Tokens, live: LiveApi) -> dict[str, str | None]:
    """Every way a request can fail to authenticate: the Authorization header it sends (None: none)."""
    issuer = tokens.issuer
    good = tokens.admin()
    head, body, signature = good.split(".")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alias = dataclasses.replace(issuer, issuer=f"http://localhost:{live.idp.port}")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "no token": None,
        "basic scheme": "Basic dXNlcjpwYXNz",
        "empty bearer": "Bearer",
        "not a jwt": "Bearer not-a-jwt",
        "expired": f"Bearer {issuer.expired()}",
        "wrong audience": f"Bearer {issuer.mint('operator', OPERATOR, audience='https://other.example')}",
        "wrong issuer": f"Bearer {alias.mint('operator', OPERATOR)}",
        "bad signature": f"Bearer {head}.{body}.{flipped}",
        "alg none": f"Bearer {_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.",
        "alg HS256": "Bearer "
        + jwt.encode(_payload(good), "a-shared-secret-of-at-least-32-bytes", algorithm="HS256"),
        "unknown kid": "Bearer "
        + jwt.encode(_payload(good), stranger, algorithm="RS256", headers={"kid": "not-published"}),
    }


@pytest.fixture(scope="module")
def client(live_api: LiveApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=10.0) as c:
        yield c


@pytest.fixture(scope="module")
def customer_order(client: httpx.Client, tokens: Tokens) -> int:
    """An order of customer 123, placed with its own token."""
    created = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": 1, "quantity": 1}]},
        headers=tokens.header("123", CUSTOMER),
    )
    assert created.status_code == 201, created.text
    return int(created.json()["order_id"])


def _call(
    client: httpx.Client, route: Route, order_id: int, headers: dict[str, Any], **extra: Any
) -> httpx.Response:
    path = route.path.replace(ORDER, str(order_id))
    if route.path == "/ui/api/stream":  # an endless feed: only its status and headers matter here
        with client.stream(route.method, path, headers=headers) as response:
            response.read() if response.status_code != 200 else None
            return response
    return client.request(route.method, path, json=route.body, headers=headers, **extra)


def test_every_route_refuses_every_bad_token_with_a_401_challenge(
    client: httpx.Client, tokens: Tokens, live_api: LiveApi, customer_order: int
) -> None:
    bad = _bad_tokens(tokens, live_api)
    failures = []
    for route in ROUTES:
        for kind, authorization in bad.items():
            headers = {} if authorization is None else {"Authorization": authorization}
            response = _call(client, route, customer_order, headers)
            try:
                body = assert_problem(response, 401)
                challenge = response.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="eda"'), challenge
                if kind not in ("no token", "basic scheme"):
                    assert 'error="invalid_token"' in challenge, challenge
                assert "eyJ" not in response.text  # the token is never echoed
                assert body["type"].endswith("/unauthenticated")
            except (AssertionError, KeyError) as exc:
                failures.append(f"{route.method} {route.path} [{kind}]: {exc}")
    assert not failures, "\n".join(failures)


def test_every_route_names_the_missing_scope_with_a_403(
    client: httpx.Client, tokens: Tokens, customer_order: int
) -> None:
    for route in (r for r in ROUTES if r.lacking):
        assert route.lacking is not None
        response = _call(client, route, customer_order, tokens.header("scoped-too-little", route.lacking))
        body = assert_problem(response, 403)
        assert body["type"].endswith("/insufficient-scope"), (route, body)
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert f'scope="{body["scope"]}"' in challenge
        assert route.lacking not in body["scope"].split(), (route, body)


def test_another_customers_order_is_not_found(
    client: httpx.Client, tokens: Tokens, customer_order: int
) -> None:
    other = tokens.header("456", CUSTOMER)
    missing = 10**12
    for route in ORDER_ROUTES:
        hidden = _call(client, route, customer_order, other)
        absent = _call(client, route, missing, other)
        body = assert_problem(hidden, 404)
        assert body["type"].endswith("/order-not-found"), (route, body)
        assert body["detail"] == absent.json()["detail"].replace(str(missing), str(customer_order))
    stale = client.post(
        f"/api/v1/orders/{customer_order}/cancel", headers=other | {"If-Match": '"7"'}, json={}
    )
    assert_problem(stale, 404)  # not 412: a stale version must not disclose the order either


def test_customers_see_and_cancel_only_their_own_orders_operators_see_all(
    client: httpx.Client, tokens: Tokens
) -> None:
    mine, theirs = tokens.header("321", CUSTOMER), tokens.header("654", CUSTOMER)
    body = {"items": [{"product_id": 3, "quantity": 1}]}
    own = client.post("/api/v1/orders", json=body, headers=mine).json()["order_id"]
    other = client.post("/api/v1/orders", json=body, headers=theirs).json()["order_id"]
    listed = client.get("/api/v1/orders", params={"min_version": 1}, headers=mine)
    deadline = time.monotonic() + 10
    while own not in [o["order_id"] for o in listed.json()["items"]] and time.monotonic() < deadline:
        time.sleep(0.1)
        listed = client.get("/api/v1/orders", headers=mine)
    ids = [o["order_id"] for o in listed.json()["items"]]
    assert own in ids
    assert other not in ids
    assert {o["user_id"] for o in listed.json()["items"]} == {321}
    assert client.get("/api/v1/orders", params={"user_id": 654}, headers=mine).json()["items"] == []
    operator = tokens.header("operator", OPERATOR)
    assert client.get(f"/api/v1/orders/{other}", headers=operator).status_code == 200
    everyone = client.get("/api/v1/orders", params={"limit": 200}, headers=operator).json()["items"]
    assert {own, other} <= {o["order_id"] for o in everyone}
    assert client.post(f"/api/v1/orders/{own}/cancel", headers=mine, json={}).status_code == 200
    assert_problem(client.post(f"/api/v1/orders/{other}/cancel", headers=mine, json={}), 404)
    assert client.post(f"/api/v1/orders/{other}/cancel", headers=operator, json={}).status_code == 200


def test_customers_order_only_for_themselves_and_only_with_items(
    client: httpx.Client, tokens: Tokens
) -> None:
    customer = tokens.header("123", CUSTOMER)
    items = [{"product_id": 1, "quantity": 2}]
    for body in ({"user_id": 124, "items": items}, {"user_id": 123, "amount": 99.99}):
        refused = assert_problem(client.post("/api/v1/orders", json=body, headers=customer), 403)
        assert refused["scope"] == "orders:write:any", body
    assert (
        client.post("/api/v1/orders", json={"user_id": 123, "items": items}, headers=customer).status_code
        == 201
    )
    named = assert_problem(
        client.post("/api/v1/orders", json={"items": items}, headers=tokens.header("alice", CUSTOMER)), 403
    )
    assert named["type"].endswith("/subject-not-a-customer")


def test_prices_come_from_the_catalog(client: httpx.Client, tokens: Tokens) -> None:
    operator, customer = tokens.header("operator", OPERATOR), tokens.header("123", CUSTOMER)
    priced = client.put("/api/v1/catalog/77", json={"price": 12.5}, headers=operator)
    assert priced.json() | {"version": 0} == {
        "product_id": 77,
        "price": 12.5,
        "currency": "USD",
        "default_price": False,
        "version": 0,
    }
    items = [{"product_id": 77, "quantity": 2}, {"product_id": 1, "quantity": 1}]  # 1: default 99.99
    tampered = client.post("/api/v1/orders", json={"items": items, "amount": 0}, headers=customer)
    problem = assert_problem(tampered, 422)
    assert problem["type"].endswith("/amount-mismatch")
    assert problem["total"] == 124.99
    assert "124.99" in problem["detail"]
    created = client.post("/api/v1/orders", json={"items": items}, headers=customer)
    order_id = created.json()["order_id"]
    got = client.get(f"/api/v1/orders/{order_id}", params={"min_version": 1}, headers=customer)
    assert got.json()["amount"] == 124.99
    client.put("/api/v1/catalog/78", json={"price": 0}, headers=operator)
    free = client.post(
        "/api/v1/orders", json={"items": [{"product_id": 78, "quantity": 5}], "amount": 0}, headers=customer
    )
    assert free.status_code == 201, free.text  # 0 only because the catalog says 0


def test_the_catalog_lists_every_priced_product_by_id(client: httpx.Client, tokens: Tokens) -> None:
    operator, customer = tokens.header("operator", OPERATOR), tokens.header("123", CUSTOMER)
    prices = {9003: 3.5, 9001: 1.25, 9002: 0.0, 9004: 40.0}
    for product_id, price in prices.items():
        assert client.put(f"/api/v1/catalog/{product_id}", json={"price": price}, headers=operator).is_success
    client.put("/api/v1/catalog/9004", json={"price": 4.0}, headers=operator)  # repriced: the latest counts
    listed: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = client.get("/api/v1/catalog", params={"limit": 2, "cursor": cursor or ""}, headers=customer)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        listed += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            assert "Link" not in page.headers
            break
        assert page.headers["Link"] == f'</api/v1/catalog?limit=2&cursor={cursor}>; rel="next"'
    ids = [p["product_id"] for p in listed]
    assert ids == sorted(set(ids)), ids  # ascending, each once, across pages
    ours = {p["product_id"]: (p["price"], p["version"]) for p in listed if p["product_id"] > 9000}
    assert ours == {9001: (1.25, 1), 9002: (0.0, 1), 9003: (3.5, 1), 9004: (4.0, 2)}
    assert not any(p["default_price"] for p in listed)  # only priced products: they have a stream
    one = client.get("/api/v1/catalog/9004", headers=customer).json()
    assert one == next(p for p in listed if p["product_id"] == 9004)  # the list says what GET says
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "not-a-cursor"}, {"cursor": "MA"}):
        assert_problem(client.get("/api/v1/catalog", params=bad, headers=customer), 422)


def test_seed_flow_with_tokens(client: httpx.Client, tokens: Tokens) -> None:
    """The seed's item-less order needs a trusted backend (orders:write:any); its customer reads it."""
    backend = tokens.header("checkout-service", "orders:write:any")
    created = client.post("/api/v1/orders", json={"user_id": 123, "amount": 99.99}, headers=backend)
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    got = client.get(f"/api/v1/orders/{order_id}", headers=tokens.header("123", CUSTOMER))
    assert got.status_code == 200, got.text
    assert got.json()["user_id"] == 123
    assert got.json()["amount"] == 99.99


def test_idempotency_keys_are_per_caller(client: httpx.Client, tokens: Tokens) -> None:
    body = {"items": [{"product_id": 2, "quantity": 1}]}
    key = {"Idempotency-Key": "same-key-for-two-callers"}
    first = client.post("/api/v1/orders", json=body, headers=tokens.header("801", CUSTOMER) | key)
    second = client.post("/api/v1/orders", json=body, headers=tokens.header("802", CUSTOMER) | key)
    again = client.post("/api/v1/orders", json=body, headers=tokens.header("801", CUSTOMER) | key)
    assert first.status_code == second.status_code == again.status_code == 201
    assert first.json()["order_id"] != second.json()["order_id"]  # not a replay of the other's
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.headers["idempotent-replayed"] == "true"


GARBAGE = st.binary(max_size=300).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(value=GARBAGE, prefix=st.sampled_from([b"", b"Bearer ", b"bearer ", b"Bearer eyJ", b"BEARER  "]))
def test_garbage_authorization_headers_are_401_never_5xx(
    client: httpx.Client, customer_order: int, value: bytes, prefix: bytes
) -> None:
    """Random bytes (latin-1 header values included) after the scheme, on an order, a list, the console
    and the metrics: always a 401 problem with a challenge."""
    for route in (ROUTES[0], ROUTES[2], ROUTES[11], ROUTES[15]):
        response = _call(client, route, customer_order, {"Authorization": (prefix + value).strip() or b"x"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_cooldown(live_api: LiveApi) -> None:
    now = [1000.0]
    async with httpx.AsyncClient() as http:
        keys = KeySource(http, issuer=live_api.idp.issuer, cooldown_s=30.0, clock=lambda: now[0])
        published = (await http.get(f"{live_api.idp.issuer}/.well-known/jwks.json")).json()["keys"]
        await keys.key(published[0]["kid"])
        assert keys.fetches == 1
        with pytest.raises(Unauthenticated):
            await keys.key("never-published")
        assert keys.fetches == 1  # just read: an unknown kid waits for the cooldown
        now[0] += 31
        with pytest.raises(Unauthenticated):
            await keys.key("never-published")
        assert keys.fetches == 2  # one refetch for the unknown kid
        results = await asyncio.gather(*(keys.key(f"forged-{i}") for i in range(50)), return_exceptions=True)
        assert all(isinstance(r, Unauthenticated) for r in results)
        assert keys.fetches == 2  # within the cooldown: no fetch at all
        now[0] += 31
        with pytest.raises(Unauthenticated):
            await keys.key("never-published")
        assert keys.fetches == 3
        dead = KeySource(http, issuer=f"http://127.0.0.1:{free_port()}")
        with pytest.raises(IssuerUnavailable):
            await dead.key("any")


async def test_unreachable_issuer_with_no_cached_key_is_a_503(settings, tokens: Tokens) -> None:  # type: ignore[no-untyped-def]
    nowhere = settings.model_copy(update={"auth_issuer": f"http://127.0.0.1:{free_port()}"})
    async with running_system(nowhere, projector=False, token=tokens.admin()) as system:
        response = await system.client.get("/api/v1/orders")
        body = assert_problem(response, 503)
        assert body["type"].endswith("/issuer-unavailable")
        assert "eyJ" not in response.text


def test_a_rotated_key_is_fetched_once_on_its_unknown_kid(
    client: httpx.Client, tokens: Tokens, live_api: LiveApi
) -> None:
    """Last in this module: rotates the session provider's signing key (old keys stay published)."""
    issuer = tokens.issuer
    before = client.get("/api/v1/orders", headers=tokens.header("123", CUSTOMER))
    assert before.status_code == 200
    new_kid = issuer.rotate_keys()
    time.sleep(0.6)  # the live API's EDA_AUTH_JWKS_COOLDOWN_S
    fresh = issuer.mint("123", CUSTOMER)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    after = client.get("/api/v1/orders", headers={"Authorization": f"Bearer {fresh}"})
    assert after.status_code == 200, after.text
    still = client.get("/api/v1/orders", headers=tokens.header("123", CUSTOMER))  # the old key's token
    assert still.status_code == 200
    assert _payload(fresh)["aud"] == AUDIENCE
