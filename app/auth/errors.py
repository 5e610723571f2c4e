"""Why a request is not authenticated or not authorized, and the RFC 6750 challenge that says so.

``Unauthenticated`` (401): no token, or a token that is malformed, expired, wrongly signed, for another
issuer or audience, or signed by an unknown key. ``InsufficientScope`` (403): a valid token without the
scope the route needs. ``IssuerUnavailable`` (503): the issuer's keys cannot be fetched and none is
cached. Descriptions are fixed texts chosen here: never a token, a claim value or a library message.
"""

from __future__ import annotations

import re

REALM = "eda"
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 §3: error_description's characters


class AuthError(Exception):
    """Base of the authentication and authorization failures."""

    status = 401
    error: str | None = None

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = _UNSAFE.sub("?", description)

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 §3)."""
        parts = [f'realm="{REALM}"']
        if self.error is not None:
            parts += [f'error="{self.error}"', f'error_description="{self.description}"']
        return "Bearer " + ", ".join(parts)


class Unauthenticated(AuthError):
    """401. Without any credentials RFC 6750 §3.1 wants no error code, else ``invalid_token``."""

    def __init__(self, description: str, *, token_presented: bool = True) -> None:
        super().__init__(description)
        self.error = "invalid_token" if token_presented else None


class InsufficientScope(AuthError):
    """403 ``insufficient_scope``, naming the scope (or scopes, any of which) the request needs."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes
        names = " or ".join(scopes)
        super().__init__(f"this request needs the scope {names}")

    def challenge(self) -> str:
        return super().challenge() + f', scope="{" ".join(self.scopes)}"'


class IssuerUnavailable(AuthError):
    """503: the issuer's signing keys could not be fetched and none is cached."""

    status = 503
    error = None
