"""Tokens of the session's OIDC provider for the tests (``tokens`` fixture in conftest.py)."""

from __future__ import annotations

from app.auth.scopes import ALL_SCOPES
from app.dev.issuer import DevIssuer


class Tokens:
    """Access tokens of the session's provider, minted through its token endpoint, memoised."""

    ADMIN_SCOPE = " ".join(sorted(ALL_SCOPES))

    def __init__(self, issuer: DevIssuer) -> None:
        self.issuer = issuer
        self._known: dict[tuple[str, str], str] = {}

    def __call__(self, subject: str, scope: str) -> str:
        key = (subject, scope)
        if key not in self._known:
            self._known[key] = self.issuer.mint(subject, scope)
        return self._known[key]

    def admin(self) -> str:
        """A token with every scope (operator and trusted backend at once)."""
        return self("test-admin", self.ADMIN_SCOPE)

    def header(self, subject: str, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self(subject, scope)}"}
