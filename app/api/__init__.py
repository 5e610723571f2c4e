"""The HTTP API (FastAPI): ``create_app(settings)`` in ``app.api.main``; routers in ``app.api.routes``."""
