"""What the API does while its process stops (docs/kubernetes.md § Rollouts).

From the moment the process owner calls ``Shutdown.begin()`` (SIGTERM) until uvicorn stops accepting:
``/readyz`` answers 503 ``shutting-down`` (``app.api.routes.health``), every response carries
``Connection: close`` (``ClosingConnections``: a keep-alive client opens its next request elsewhere
instead of racing the closing socket), and console streams end (``app.ui.streams``). Then uvicorn
stops accepting and lets in-flight requests finish (``EDA_SHUTDOWN_GRACE_S``), see
``app.runtime.server``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.process.shutdown import Shutdown


class ClosingConnections:
    """Pure ASGI middleware: ``Connection: close`` on every response once shutdown has begun."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.shutdown.begun:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
