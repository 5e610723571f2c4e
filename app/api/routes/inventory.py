"""``/api/v1/inventory/{product_id}``: read and set a product's stock (the inventory worker's aggregate).

A product never set counts as ``EDA_DEFAULT_STOCK`` units (1000 in ``eda dev``, 0 otherwise). Reading
needs any valid token; setting needs ``inventory:write``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.api.deps import Ctx, Meta
from app.api.schemas import ProductIdPath, problem_responses
from app.api.security import AUTH_RESPONSES, caller, requires
from app.auth.scopes import Scope
from app.domain.inventory import STOCK, SetStock, current
from app.domain.inventory.decider import MAX_STOCK

router = APIRouter(
    prefix="/api/v1/inventory",
    tags=["inventory"],
    dependencies=[Depends(caller)],
    responses=AUTH_RESPONSES,
)
_ERRORS = problem_responses(409, 422)


class StockIn(BaseModel):
    stock: int = Field(ge=0, le=MAX_STOCK, strict=True, description="Units on hand.")


class StockOut(BaseModel):
    product_id: int
    stock: int = Field(description="Units on hand (including reserved ones).")
    reserved: int = Field(description="Units held for orders in progress.")
    available: int = Field(description="stock - reserved: what new orders can reserve.")
    version: int


async def _read(ctx: Ctx, product_id: int) -> StockOut:
    loaded = await ctx.repository(STOCK).load(product_id)
    stock = current(loaded.state, product_id, ctx.settings.default_stock)
    return StockOut(
        product_id=product_id,
        stock=stock.stock,
        reserved=stock.reserved,
        available=stock.available,
        version=loaded.position.version,
    )


@router.get("/{product_id}", response_model=StockOut, responses=_ERRORS, summary="A product's stock")
async def get_stock(product_id: ProductIdPath, ctx: Ctx) -> StockOut:
    return await _read(ctx, product_id)


@router.put(
    "/{product_id}",
    response_model=StockOut,
    responses={**_ERRORS, 413: _ERRORS[409], 415: _ERRORS[409]},
    summary="Set a product's stock (scope inventory:write)",
    dependencies=[requires(Scope.INVENTORY_WRITE)],
)
async def put_stock(product_id: ProductIdPath, body: StockIn, ctx: Ctx, meta: Meta) -> StockOut:
    command = SetStock(product_id=product_id, stock=body.stock, at=datetime.now(UTC))
    await ctx.handler(STOCK).execute(product_id, command, meta)
    return await _read(ctx, product_id)
