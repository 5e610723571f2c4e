"""The scopes of the public surface and ``Principal``, the caller a request acts for.

A customer holds ``orders:write`` / ``orders:read`` and sees only the orders it owns; an operator holds
the ``:all`` / ``:any`` scopes; a trusted backend holds ``orders:write:any`` (acts for any user). The
table with what each scope allows is in docs/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Scope(StrEnum):
    """Every scope the API checks."""

    ORDERS_WRITE = "orders:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE_ANY = "orders:write:any"
    ORDERS_READ_ALL = "orders:read:all"
    ORDERS_CANCEL_ANY = "orders:cancel:any"
    INVENTORY_WRITE = "inventory:write"
    CATALOG_WRITE = "catalog:write"
    ADMIN_READ = "admin:read"


ALL_SCOPES: frozenset[str] = frozenset(Scope)
CUSTOMER_SCOPES: frozenset[str] = frozenset({Scope.ORDERS_WRITE, Scope.ORDERS_READ})
OPERATOR_SCOPES: frozenset[str] = frozenset(
    {
        Scope.ORDERS_READ_ALL,
        Scope.ORDERS_CANCEL_ANY,
        Scope.INVENTORY_WRITE,
        Scope.CATALOG_WRITE,
        Scope.ADMIN_READ,
    }
)

Kind = Literal["token", "anonymous-dev", "auth-disabled"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the subject (the configured subject claim) and the scopes it was granted.

    ``kind`` says how it was established: a verified bearer token, ``eda dev``'s anonymous loopback
    principal, or ``EDA_AUTH_MODE=disabled`` (both of the latter hold every scope)."""

    subject: str
    scopes: frozenset[str]
    kind: Kind = "token"

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    def has_any(self, *scopes: Scope) -> bool:
        return any(s in self.scopes for s in scopes)


ANONYMOUS_SUBJECT = "anonymous"
