"""Request and response bodies of the order API (pydantic, strict: unknown fields are rejected).

Responses are rendered with ``render_*`` (orjson) for speed; the response models exist so that the
OpenAPI document at ``/docs`` describes exactly what is sent. Amounts are JSON numbers with at most two
decimals; timestamps are RFC 3339 UTC (``...Z``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.domain.order import OrderStatus
from app.readmodel.queries import OrderRecord

MAX_ID = 2**53 - 1  # ids stay exact in every JSON client
MAX_AMOUNT = 1_000_000_000_000

Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
OrderIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The order id.")]
ProductIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The product id.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderItemIn(_Strict):
    product_id: Id = Field(description="Product id (positive integer).")
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = Field(description="Units (≥ 1).")


class CreateOrderIn(_Strict):
    """``POST /api/v1/orders``; the seed's ``{"user_id": 123, "amount": 99.99}`` is valid (for a caller
    with ``orders:write:any``: only a trusted backend sets the amount of an order without items)."""

    user_id: Id | None = Field(
        default=None,
        description="The customer (positive integer). A customer's token may omit it (its subject is its "
        "customer number); another customer's needs orders:write:any.",
    )
    amount: float | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        description="Optional check of the total (≥ 0, two decimals): the server computes it from the "
        "catalog and answers 422 naming the total if it differs. Required for an order without items.",
        json_schema_extra={"multipleOf": 0.01},
    )
    items: list[OrderItemIn] = Field(default_factory=list, max_length=100, description="Order lines.")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")

    @field_validator("amount")
    @classmethod
    def _two_decimals(cls, value: float | None) -> float | None:
        if value is None:
            return None
        exact = Decimal(str(value))
        if exact != exact.quantize(Decimal("0.01")):
            raise ValueError("amount must have at most two decimals")
        return value

    @field_validator("items")
    @classmethod
    def _unique_products(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        if len({i.product_id for i in items}) != len(items):
            raise ValueError("each product may appear only once in items")
        return items


class CancelOrderIn(_Strict):
    reason: str = Field(default="cancelled by customer", min_length=1, max_length=500)


class CommandOut(BaseModel):
    """The outcome of a command: the order's id, status and version after it."""

    order_id: int
    status: OrderStatus
    version: int


class TimelineOut(BaseModel):
    type: str
    timestamp: datetime
    version: int


class OrderItemOut(BaseModel):
    product_id: int
    quantity: int


class OrderSummaryOut(BaseModel):
    order_id: int
    user_id: int
    items: list[OrderItemOut]
    amount: float
    currency: str
    status: OrderStatus
    version: int
    created_at: datetime
    updated_at: datetime


class OrderOut(OrderSummaryOut):
    events: list[TimelineOut]


class OrderPageOut(BaseModel):
    items: list[OrderSummaryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null at the end.")


class StoredEventOut(BaseModel):
    event_id: str
    type: str
    schema_version: int
    version: int
    sequence: int
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    data: dict[str, Any]


class OrderHistoryOut(BaseModel):
    order_id: int
    events: list[StoredEventOut]


class ProblemOut(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """A route's ``responses``: each of ``codes`` documented as problem details."""
    return {code: {"model": ProblemOut, "content": {"application/problem+json": {}}} for code in codes}


def rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def render_order(rec: OrderRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": rec.order_id,
        "user_id": rec.user_id,
        "items": [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in rec.items],
        "amount": float(rec.amount),
        "currency": rec.currency,
        "status": rec.status,
        "version": rec.version,
        "created_at": rfc3339(rec.created_at),
        "updated_at": rfc3339(rec.updated_at),
    }
    if rec.events is not None:
        body["events"] = [
            {"type": e.type, "timestamp": rfc3339(e.timestamp), "version": e.version} for e in rec.events
        ]
    return body
