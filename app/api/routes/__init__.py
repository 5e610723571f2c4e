"""The API's routers, included in this order by ``create_app``. Other packages append theirs here."""

from __future__ import annotations

from fastapi import APIRouter

from app import ui
from app.api.routes import health, orders

ROUTERS: list[APIRouter] = [orders.router, health.router]
ROUTERS.append(ui.router)  # the web console (/ui); off unless EDA_UI_ENABLED

from app.api.routes import inventory, saga  # noqa: E402  (issue 4: saga + inventory endpoints)

ROUTERS += [saga.router, inventory.router]

from app.api.routes import admin  # noqa: E402  (issue 8: dead letters)

ROUTERS.append(admin.router)

from app.api.routes import catalog  # noqa: E402  (issue 14: product prices)

ROUTERS.append(catalog.router)
