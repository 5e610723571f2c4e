"""A bearer JWT → ``Principal``: PyJWT verifies the signature with the issuer's key named by ``kid``,
only with an algorithm of the allowlist (asymmetric only; PyJWT binds each JWK to its algorithm, so an
RSA key can never verify an HMAC or ``none`` token), then ``iss``, ``aud``, ``exp``, ``nbf`` and
``iat`` with a small leeway; ``exp``, ``iss``, ``aud`` and the subject claim are required.

``ClaimMapping`` turns the claims into a subject and scopes: the scope claim (a space-separated string
as RFC 9068 and Keycloak send it, or a list as Entra's ``scp``/``roles`` do) plus the scopes granted by
roles found at a dotted path (Keycloak: ``realm_access.roles``).

Verdicts are cached per token string until the token's ``exp`` (bounded LRU): a client reuses its
token for many requests, and an RSA verification costs ~100-200 µs of a ~1 ms request. The cache is
dropped when the issuer's key set changes, so a withdrawn key stops working at the next JWKS read.
Failures say what was wrong in fixed words; the token and its claims are never logged.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from app.auth.errors import Unauthenticated
from app.auth.jwks import KeySource
from app.auth.scopes import Principal

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 16_384
_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_FAILURES: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidKeyError, "the token's signing key is not acceptable"),
]


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Which claims name the caller and grant scopes."""

    subject: str = "sub"
    scope: str = "scope"
    roles_path: str | None = None
    role_scopes: Mapping[str, str] = field(default_factory=dict)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        subject = claims.get(self.subject)
        if isinstance(subject, bool) or not isinstance(subject, str | int) or str(subject) == "":
            raise Unauthenticated("the token names no subject")
        return Principal(subject=str(subject), scopes=self._scopes(claims))

    def _scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        scopes = set(_words(claims.get(self.scope)))
        for role in _words(_at_path(claims, self.roles_path)) if self.roles_path else ():
            scopes.add(role)  # a role named like a scope grants it; unknown names are inert
            scopes.update(self.role_scopes.get(role, "").split())
        return frozenset(scopes)


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _at_path(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True, slots=True)
class _Verdict:
    principal: Principal
    expires: float
    generation: int


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        leeway_s: float = 30.0,
        claims: ClaimMapping | None = None,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway_s
        self._claims = claims or ClaimMapping()
        self._cache: OrderedDict[str, _Verdict] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @property
    def keys(self) -> KeySource:
        return self._keys

    async def verify(self, token: str) -> Principal:
        """The principal of a valid ``token``; ``Unauthenticated`` (401) or ``IssuerUnavailable`` (503)."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.generation == self._keys.generation and self._clock() <= cached.expires:
                return cached.principal
            del self._cache[token]
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("the token is too long")
        claims = await self._decode(token)
        principal = self._claims.principal(claims)
        self._remember(token, _Verdict(principal, float(claims["exp"]) + self._leeway, self._keys.generation))
        return principal

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a well-formed JWT") from None
        if header.get("alg") not in self._algorithms:
            raise Unauthenticated("the token's algorithm is not accepted")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise Unauthenticated("the token is not an access token")
        kid = header.get("kid")
        key = await self._keys.key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "iss", "aud", self._claims.subject],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        return claims

    def _remember(self, token: str, verdict: _Verdict) -> None:
        self._cache[token] = verdict
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, text in _FAILURES:
        if isinstance(exc, kind):
            return text
    return "the token is not valid"
