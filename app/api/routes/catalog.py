"""``/api/v1/catalog/{product_id}``: read and set a product's price (the ``product`` aggregate).

Orders are charged these prices (``app.api.pricing``). A product never priced costs ``EDA_DEFAULT_PRICE``
if that is set (``eda dev``: 99.99), else it cannot be ordered (404 here, 422 in an order). Reading needs
any valid token; setting needs ``catalog:write``. See docs/catalog.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.api.deps import Ctx, Meta
from app.api.errors import Problem
from app.api.schemas import ProductIdPath, problem_responses
from app.api.security import AUTH_RESPONSES, caller, requires
from app.auth.scopes import Scope
from app.domain.catalog import PRODUCT, Product, SetPrice
from app.domain.catalog.decider import MAX_PRICE

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
