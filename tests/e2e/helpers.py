"""Assertions shared by the e2e tests."""

from __future__ import annotations

from typing import Any

import httpx

SEED = {"user_id": 123, "amount": 99.99}


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    """``resp`` is an RFC 9457 problem with ``status``; returns its body."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert "Traceback" not in resp.text
    return body
