"""The read-only web console at ``/ui`` (orders, event and saga timelines, projection health), served
by the API itself when ``EDA_UI_ENABLED=true``. The API includes ``app.ui.router``."""

from app.ui.router import router

__all__ = ["router"]
