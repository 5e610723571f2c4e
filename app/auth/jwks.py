"""The issuer's signing keys (JWKS): fetched over HTTP without blocking the event loop, cached, re-read
every ``refresh_s``, and refetched on an unknown ``kid`` at most once per ``cooldown_s``.

Where the keys are: ``jwks_url`` if configured, else the ``jwks_uri`` of the issuer's OpenID discovery
document (``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be the configured one).
The cooldown bounds what tokens with made-up ``kid`` values can cost: at most one fetch per cooldown,
however many arrive. Concurrent callers share one fetch. A failed fetch keeps the keys already known
(they stay usable until the issuer answers again); with no key known it is ``IssuerUnavailable`` (503).
Only asymmetric signing keys are kept: a symmetric (``oct``) key in a JWKS is never used to verify.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from jwt import PyJWK, PyJWTError

from app.auth.errors import IssuerUnavailable, Unauthenticated

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024
_ASYMMETRIC = ("RSA", "EC", "OKP")


class JwksError(Exception):
    """The discovery document or the JWKS could not be fetched or used."""


def _usable(entry: Any) -> PyJWK | None:
    if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    try:
        return PyJWK(entry)
    except PyJWTError:  # an algorithm or curve we cannot use: skip it, like PyJWKSet does
        return None


def parse_jwks(document: Any) -> dict[str | None, PyJWK]:
    """The usable signing keys of a JWKS document by ``kid`` (``None``: a key without one)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the JWKS has no keys array")
    keys = {}
    for entry in entries:
        key = _usable(entry)
        if key is not None:
            keys[key.key_id] = key
    if not keys:
        raise JwksError("the JWKS has no usable signing key")
    return keys


class KeySource:
    """The signing keys of one issuer; ``await key(kid)`` is the only call a verifier makes."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        issuer: str,
        jwks_url: str | None = None,
        refresh_s: float = 600.0,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._refresh_s = refresh_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped whenever the set of keys changes (a cache of verdicts drops them)
        self.fetches = 0
        self._discovery: dict[str, Any] | None = None
        self._attempts = 0  # completed fetch attempts: callers that waited on the lock reuse the last
        self._retry_s = min(cooldown_s, 2.0)  # with no key at all, try again this soon

    async def key(self, kid: str | None) -> PyJWK:
        """The key named ``kid`` (a lone key when the token names none); ``Unauthenticated`` if unknown."""
        if self._needs_fetch():
            await self._refresh()
        if not self._keys:
            raise IssuerUnavailable("the token issuer's signing keys are unavailable")
        found = self._find(kid)
        if found is None and self._may_refetch():
            await self._refresh()
            found = self._find(kid)
        if found is None:
            raise Unauthenticated("the token is signed by an unknown key")
        return found

    def _needs_fetch(self) -> bool:
        if self._fetched_at is None or not self._keys:
            return True  # ``_refresh`` decides whether a recent failure forbids another try
        return self._clock() - self._fetched_at >= self._refresh_s

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        return self._tried_at is None or self._clock() - self._tried_at >= self._cooldown_s

    async def _refresh(self) -> None:
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return  # another caller fetched (or tried) while we waited: use its outcome
            now = self._clock()
            if not self._keys and self._tried_at is not None and now - self._tried_at < self._retry_s:
                return  # no key and a failed try a moment ago: not once per request
            self._tried_at = now
            try:
                await self._fetch()
            finally:
                self._attempts += 1

    async def _fetch(self) -> None:
        try:
            keys = parse_jwks(await self._get_json(await self._jwks_location()))
        except (JwksError, httpx.HTTPError, ValueError) as exc:
            if not self._keys:
                log.warning("the issuer's signing keys are unavailable: %s", exc)
                return
            log.warning("JWKS refresh failed, keeping the %d known keys: %s", len(self._keys), exc)
            self._fetched_at = self._clock()  # retry after refresh_s (or on an unknown kid)
            return
        self.fetches += 1
        if set(keys) != set(self._keys):
            self.generation += 1
        self._keys, self._fetched_at = keys, self._clock()

    async def discovery(self) -> dict[str, Any]:
        """The issuer's OpenID discovery document (fetched once; ``JwksError``/``httpx.HTTPError``)."""
        if self._discovery is None:
            url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            if not isinstance(document, dict) or document.get("issuer") != self._issuer:
                raise JwksError("the discovery document names another issuer")
            self._discovery = document
        return self._discovery

    async def _jwks_location(self) -> str:
        if self._jwks_url is None:
            discovery = await self.discovery()
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise JwksError("the discovery document has no jwks_uri")
            self._jwks_url = jwks_uri
        return self._jwks_url

    async def _get_json(self, url: str) -> Any:
        response = await self._client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise JwksError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        return response.json()
