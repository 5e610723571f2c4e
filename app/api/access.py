"""Who may do what with orders: the ownership rules of the order routes (docs/security.md).

- Reading (get, events, saga, list): ``orders:read`` sees the caller's own orders, ``orders:read:all``
  every order. Another subject's order is answered exactly like a missing one (404), so ids disclose
  nothing; the list is filtered to the caller's orders.
- Creating: a customer (``orders:write``) places orders for itself only — its customer number is its
  subject, which must then be a positive integer (map one with ``EDA_AUTH_SUBJECT_CLAIM``); a body
  ``user_id`` of anybody else, or an order without items (whose amount the client would set), needs
  ``orders:write:any`` (a trusted backend, acting for any customer; the order then belongs to
  ``str(user_id)``).
- Cancelling: ``orders:write`` cancels the caller's own orders, ``orders:cancel:any`` any order.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.api.errors import Problem
from app.api.schemas import MAX_ID, CreateOrderIn
from app.auth.errors import InsufficientScope
from app.auth.scopes import Principal, Scope


def not_found(order_id: int) -> Problem:
    """The one answer for a missing order and for another subject's order."""
    return Problem(404, "order-not-found", "Order not found", f"order {order_id} does not exist")


def reads_all(principal: Principal) -> bool:
    return principal.has(Scope.ORDERS_READ_ALL)


def visible_owner(principal: Principal) -> str | None:
    """The owner a caller's reads are limited to; ``None``: every order."""
    return None if reads_all(principal) else principal.subject


def ensure_visible(principal: Principal, order_id: int, owner: str | None) -> None:
    """404 unless the order exists (``owner`` known) and the caller may see it."""
    if owner is None or (not reads_all(principal) and owner != principal.subject):
        raise not_found(order_id)


def cancel_owner(principal: Principal) -> str | None:
    """The owner a cancel is limited to (``None``: any order, with ``orders:cancel:any``)."""
    return None if principal.has(Scope.ORDERS_CANCEL_ANY) else principal.subject


@dataclass(frozen=True, slots=True)
class Placement:
    """For whom an order is placed: the customer number and the subject that will own it."""

    user_id: int
    owner: str


def _customer_number(subject: str) -> int | None:
    if subject.isascii() and subject.isdigit() and 0 < int(subject) <= MAX_ID:
        return int(subject)
    return None


def placement(principal: Principal, body: CreateOrderIn) -> Placement:
    """Whom ``principal`` may place ``body`` for (403 ``insufficient_scope`` otherwise)."""
    if principal.has(Scope.ORDERS_WRITE_ANY):
        if body.user_id is None:
            raise Problem(
                422, "user-id-required", "Invalid request", "an order placed for a customer needs user_id"
            )
        return Placement(body.user_id, str(body.user_id))
    if not body.items:
        raise InsufficientScope(Scope.ORDERS_WRITE_ANY)  # only a trusted backend sets an amount itself
    customer = _customer_number(principal.subject)
    if body.user_id is not None and body.user_id != customer:
        raise InsufficientScope(Scope.ORDERS_WRITE_ANY)  # acting for another customer
    if customer is None:
        raise Problem(
            403,
            "subject-not-a-customer",
            "Forbidden",
            "the token's subject is not a customer number; map one with EDA_AUTH_SUBJECT_CLAIM",
        )
    return Placement(customer, principal.subject)
