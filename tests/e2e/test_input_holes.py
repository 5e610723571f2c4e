"""Small input holes found in review (issue 14, item 7): each answered a 500 or accepted what it must not.

- ``If-Match: ²``: ``str.isdigit()`` accepts superscript digits, ``int()`` does not → 500; now 412.
- Unsafe methods with ``text/plain`` or form bodies were parsed as JSON (a cross-site ``<form>`` could
  create or cancel orders); now 415 unless the body is ``application/json``.
- ``/readyz`` showed exception messages (DSNs, hosts, SQL) to anyone; now only the check's verdict.
"""

from __future__ import annotations

from e2e.conftest import System
from e2e.helpers import SEED, assert_problem

ORDERS = "/api/v1/orders"


async def test_if_match_with_superscript_digits_is_a_412_not_a_500(system: System) -> None:
    order_id = (await system.client.post(ORDERS, json=SEED)).json()["order_id"]
    for tag in ("²", '"²"', 'W/"¹"', '"1³"'):  # superscript digits pass str.isdigit()
        # header values are latin-1 on the wire: b"\xb2" is what a server decodes as "²"
        headers = {"If-Match": tag.encode("latin-1")}
        response = await system.client.post(f"{ORDERS}/{order_id}/cancel", headers=headers)
        assert_problem(response, 412)


async def test_unsafe_methods_accept_only_json_bodies(system: System) -> None:
    c = system.client
    form = await c.post(ORDERS, data={"user_id": "123", "amount": "1"})
    assert_problem(form, 415)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        response = await c.post(
            ORDERS, content=b'{"user_id": 123, "amount": 1}', headers={"content-type": content_type}
        )
        assert_problem(response, 415)
    missing = await c.post(ORDERS, content=b'{"user_id": 123, "amount": 1}', headers={"content-type": ""})
    assert_problem(missing, 415)
    order_id = (await c.post(ORDERS, json=SEED)).json()["order_id"]
    plain = await c.post(
        f"{ORDERS}/{order_id}/cancel", content=b'{"reason": "x"}', headers={"content-type": "text/plain"}
    )
    assert_problem(plain, 415)
    assert (await c.post(f"{ORDERS}/{order_id}/cancel")).status_code == 200  # no body: nothing to type
    ok = await c.post(
        ORDERS,
        content=b'{"user_id": 123, "amount": 1}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201, ok.text


async def test_readyz_does_not_show_exception_text(system: System) -> None:
    ctx = system.app.state.ctx
    await ctx.pool.close()  # every PostgreSQL check now raises InterfaceError("pool is closed")
    response = await system.client.get("/readyz")
    body = assert_problem(response, 503)
    postgres = body["checks"]["postgres"]
    assert postgres["ok"] is False
    assert "closed" not in response.text, response.text
