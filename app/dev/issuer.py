"""The client of the development identity provider (``app.dev.idp``): ``DevIssuer`` mints access
tokens through the provider's token endpoint (``eda token``, ``eda dev``'s banner, the tests), rotates
its signing key and registers clients, reading where it runs and its secrets from
``<data_dir>/idp/dev-issuer.json``. Minting for a subject creates it as a runtime user with a fresh
password, then asks for a token with the password grant: every token comes from the provider itself.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.auth.scopes import ALL_SCOPES

AUDIENCE = "eda-api"
CLI_CLIENT = "eda-cli"
CONSOLE_CLIENT = "eda-console"
OPERATOR = "operator"
CUSTOMER = "123"
TOKEN_MINUTES = 480  # a working day: the banner's tokens outlive a demo session
OIDC_SCOPES = ["openid", "profile", "email"]


class DevIssuerError(RuntimeError):
    """The dev issuer is not running, or refused a request."""


@dataclass(frozen=True)
class DevIssuer:
    """A running dev issuer, as ``dev-issuer.json`` describes it; mints tokens (sync: CLI and tests)."""

    issuer: str
    client_secret: str
    management_secret: str
    users: dict[str, str]

    @classmethod
    def load(cls, data_dir: Path) -> DevIssuer:
        path = data_dir / "idp" / "dev-issuer.json"
        try:
            raw = json.loads(path.read_text())
            return cls(raw["issuer"], raw["client_secret"], raw["management_secret"], raw["users"])
        except (OSError, ValueError, KeyError) as exc:
            raise DevIssuerError(f"no dev issuer in {data_dir} (is `eda dev` running there?)") from exc

    def _post(self, client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return client.post(self.issuer + path, **kwargs)
        except httpx.HTTPError as exc:
            raise DevIssuerError(f"the dev issuer at {self.issuer} does not answer ({exc})") from exc

    def _user(self, client: httpx.Client, subject: str, roles: list[str]) -> str:
        """(Re)create ``subject`` as a runtime user with a fresh password; returns the password."""
        headers = {"X-Management-Secret": self.management_secret}
        password = secrets.token_urlsafe(18)
        body = {"username": subject, "password": password, "roles": roles, "email": "dev@eda.invalid"}
        created = self._post(client, "/api/runtime/users", json=body, headers=headers)
        if created.status_code == 409:  # exists: replace it (its password is not ours to know)
            client.delete(f"{self.issuer}/api/runtime/users/{subject}", headers=headers)
            created = self._post(client, "/api/runtime/users", json=body, headers=headers)
        if created.status_code >= 300:
            raise DevIssuerError(f"the dev issuer refused user {subject!r}: {created.text[:200]}")
        return password

    def mint(
        self, subject: str, scope: str, *, roles: list[str] | None = None, audience: str | None = None
    ) -> str:
        """An access token for ``subject`` with ``scope`` (space-separated), from the token endpoint;
        ``audience``: for another resource (RFC 8707) than the API's."""
        with httpx.Client(timeout=10.0) as client:
            password = self.users.get(subject) or self._user(client, subject, roles or [])
            form = {"grant_type": "password", "username": subject, "password": password, "scope": scope}
            if audience is not None:
                form["resource"] = audience
            answer = self._post(client, "/token", data=form, auth=(CLI_CLIENT, self.client_secret))
        if answer.status_code != 200:
            raise DevIssuerError(f"the dev issuer refused a token: {answer.text[:300]}")
        token: str = answer.json()["access_token"]
        return token

    def expired(self, subject: str = OPERATOR) -> str:
        """A token of a declared user that expired five minutes ago (the provider's management API)."""
        with httpx.Client(timeout=10.0) as client:
            headers = {"X-Management-Secret": self.management_secret}
            answer = self._post(
                client, f"/api/users/{subject}/token", json={"exp_minutes": -5}, headers=headers
            )
        if answer.status_code != 200:
            raise DevIssuerError(f"the dev issuer refused an expired token: {answer.text[:200]}")
        token: str = answer.json()["access_token"]
        return token

    def add_public_client(self, client_id: str, redirect_uri: str) -> None:
        """Register a public (PKCE) client, e.g. a console on another port (runtime, not persisted)."""
        body = {
            "client_id": client_id,
            "token_endpoint_auth_method": "none",
            "redirect_uris": [redirect_uri],
            "allowed_scopes": [*OIDC_SCOPES, *sorted(ALL_SCOPES)],
        }
        with httpx.Client(timeout=10.0) as client:
            headers = {"X-Management-Secret": self.management_secret}
            answer = self._post(client, "/api/runtime/clients", json=body, headers=headers)
        if answer.status_code >= 300:
            raise DevIssuerError(f"the dev issuer refused client {client_id!r}: {answer.text[:200]}")

    def rotate_keys(self) -> str:
        """Rotate the signing key (the old one stays in the JWKS); returns the new ``kid``."""
        with httpx.Client(timeout=10.0) as client:
            headers = {"X-Management-Secret": self.management_secret}
            answer = self._post(client, "/api/keys/rotate", headers=headers)
        if answer.status_code != 200:
            raise DevIssuerError(f"key rotation refused: {answer.text[:200]}")
        kid: str = answer.json()["new_kid"]
        return kid
