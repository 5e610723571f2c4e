"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: it costs latency): request body size limit → 413,
and JSON-only request bodies → 415.

The limit is enforced on ``Content-Length`` up front and on the bytes actually received (chunked
bodies): the body is read fully (it is small by construction) and replayed to the app.

Bodies of unsafe methods must say ``Content-Type: application/json`` (or ``application/*+json``):
FastAPI parses a ``text/plain`` body as JSON too, so without this a cross-site HTML ``<form>`` — which
may send ``text/plain``, form-urlencoded or multipart without a CORS preflight — could create or cancel
orders with a victim's ambient credentials. A request without a body needs no type.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import Problem, problem_response


class BodyLimit:
    """Reject request bodies larger than ``limit`` bytes with a 413 problem."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._reject(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(
            413,
            "body-too-large",
            "Request body too large",
            f"request bodies are limited to {self.limit} bytes",
        )
        await problem_response(problem, scope.get("path"))(scope, receive, send)


_SAFE = ("GET", "HEAD", "OPTIONS")


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class JsonBodies:
    """Answer 415 to an unsafe request whose body is not declared ``application/json``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE or self._acceptable(scope["headers"]):
            await self.app(scope, receive, send)
            return
        problem = Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            "request bodies must be application/json",
        )
        await problem_response(problem, scope.get("path"))(scope, receive, send)

    @staticmethod
    def _acceptable(headers: list[tuple[bytes, bytes]]) -> bool:
        content_type: bytes | None = None
        has_body = False
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                has_body = has_body or value.strip() not in (b"", b"0")
            elif name == b"transfer-encoding":
                has_body = True
        if content_type is not None and content_type.strip():
            return _is_json(content_type)
        return not has_body
