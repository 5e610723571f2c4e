"""``/api/v1/catalog``: list the priced products; read and set a product's price (the ``product``
aggregate).

Orders are charged these prices (``app.api.pricing``). A product never priced costs ``EDA_DEFAULT_PRICE``
if that is set (``eda dev``: 99.99), else it cannot be ordered (404 here, 422 in an order). Reading needs
any valid token; setting needs ``catalog:write``. See docs/catalog.md.
"""

from __future__ import annotations

import asyncio
import bisect
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from app.api.deps import Ctx, Meta
from app.api.errors import Problem
from app.api.paging import Cursor, Limit, decode_cursor, encode_cursor, next_link
from app.api.schemas import ProductIdPath, problem_responses
from app.api.security import AUTH_RESPONSES, caller, requires
from app.auth.scopes import Scope
from app.domain.catalog import PRODUCT, Product, SetPrice
from app.domain.catalog.decider import MAX_PRICE
from app.eventstore.envelope import SUBJECT_PREFIX
from app.service.snapshotter import subject_counts

router = APIRouter(
    prefix="/api/v1/catalog",
    tags=["catalog"],
    dependencies=[Depends(caller)],
    responses=AUTH_RESPONSES,
)
_ERRORS = problem_responses(404, 409, 422)


class PriceIn(BaseModel):
    price: float = Field(
        strict=True,
        ge=0,
        le=MAX_PRICE,
        allow_inf_nan=False,
        description="Unit price, ≥ 0, at most two decimals.",
        json_schema_extra={"multipleOf": 0.01},
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")


class ProductOut(BaseModel):
    product_id: int
    price: float = Field(description="Unit price orders are charged.")
    currency: str
    default_price: bool = Field(description="True: never priced, EDA_DEFAULT_PRICE applies.")
    version: int


class ProductPageOut(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null at the end.")


async def _priced_ids(ctx: Ctx) -> list[int]:
    """Every product that was ever priced (has a stream), ascending: the stream's per-subject index,
    one JetStream request per 100,000 products — no read model to keep in step."""
    counts = await subject_counts(ctx.nc, f"{SUBJECT_PREFIX}.{PRODUCT.aggregate_type}.*")
    ids = (subject.rsplit(".", 1)[1] for subject in counts)
    return sorted(int(i) for i in ids if i.isdigit())


async def _read(ctx: Ctx, product_id: int) -> ProductOut:
    loaded = await ctx.products.load(product_id)
    state = loaded.state
    if isinstance(state, Product):
        return ProductOut(
            product_id=product_id,
            price=float(state.price),
            currency=state.currency,
            default_price=False,
            version=loaded.position.version,
        )
    if ctx.settings.default_price is None:
        raise Problem(404, "product-not-priced", "Product not priced", f"product {product_id} has no price")
    price = float(Decimal(ctx.settings.default_price))
    return ProductOut(product_id=product_id, price=price, currency="USD", default_price=True, version=0)


@router.get(
    "",
    response_model=ProductPageOut,
    responses=problem_responses(422),
    summary="List the priced products by id (keyset pagination)",
)
async def list_products(
    request: Request,
    ctx: Ctx,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    after = decode_cursor(cursor)
    ids = await _priced_ids(ctx)
    start = bisect.bisect_right(ids, after)
    page = ids[start : start + limit]
    items = await asyncio.gather(*(_read(ctx, product_id) for product_id in page))
    next_cursor = encode_cursor(page[-1]) if start + limit < len(ids) else None
    body = ProductPageOut(items=list(items), next_cursor=next_cursor).model_dump_json()
    return Response(body, media_type="application/json", headers=next_link(request, next_cursor))


@router.get("/{product_id}", response_model=ProductOut, responses=_ERRORS, summary="A product's price")
async def get_price(product_id: ProductIdPath, ctx: Ctx) -> ProductOut:
    return await _read(ctx, product_id)


@router.put(
    "/{product_id}",
    response_model=ProductOut,
    responses={**_ERRORS, 413: _ERRORS[404], 415: _ERRORS[404]},
    summary="Set a product's price (scope catalog:write)",
    dependencies=[requires(Scope.CATALOG_WRITE)],
)
async def put_price(product_id: ProductIdPath, body: PriceIn, ctx: Ctx, meta: Meta) -> ProductOut:
    command = SetPrice(
        product_id=product_id,
        price=Decimal(str(body.price)),
        currency=body.currency,
        at=datetime.now(UTC),
    )
    await ctx.handler(PRODUCT).execute(product_id, command, meta)
    return await _read(ctx, product_id)
