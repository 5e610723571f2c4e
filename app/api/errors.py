"""Every error as RFC 9457 ``application/problem+json``, never a stack trace.

``Problem`` is raised by our code; handlers map FastAPI's own errors (404/405 routing, 422 validation),
domain errors (``InvalidValue`` 422, ``NotFound`` 404, ``InvalidTransition``/``AlreadyExists`` 409),
concurrency (409; ``VersionMismatch`` from a stale ``If-Match`` 412), authentication (``AuthError``:
401 / 403 ``insufficient_scope`` with their RFC 6750 ``WWW-Authenticate``, 503 without the issuer's
keys), load limits (429 ``rate-limited``, 503 ``overloaded``, both with ``Retry-After``), unavailable
dependencies (503 with ``Retry-After``) and anything unexpected (500, logged server-side, generic
body). Problem ``type`` URIs are ``https://eda.dev/problems/<slug>`` (documented in docs/api.md);
plain HTTP errors use ``about:blank``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from nats.errors import Error as NatsError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from app.auth.errors import AuthError, InsufficientScope
from app.domain.catalog import AmountMismatch
from app.domain.common import AlreadyExists, DomainError, InvalidTransition, InvalidValue, NotFound
from app.eventstore.ports import ConcurrencyError, EventStoreError
from app.readmodel.db import PoolExhausted
from app.service.handler import VersionMismatch

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://eda.dev/problems/"

_DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidValue, 422),
    (NotFound, 404),
    (InvalidTransition, 409),
    (AlreadyExists, 409),
]


class Problem(Exception):
    """An error response: ``raise Problem(404, "order-not-found", "Order not found", "...")``."""

    def __init__(
        self,
        status: int,
        slug: str | None,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.slug if problem.slug else "about:blank",
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    body.update(problem.extra)
    return Response(
        orjson.dumps(body), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


_AUTH_SLUGS = {401: ("unauthenticated", "Unauthorized"), 503: ("issuer-unavailable", "Service unavailable")}


def _auth_problem(exc: AuthError) -> Problem:
    """401 / 403 with their RFC 6750 challenge; 503 when the issuer's keys cannot be had."""
    if isinstance(exc, InsufficientScope):
        return Problem(
            403,
            "insufficient-scope",
            "Forbidden",
            exc.description,
            headers={"WWW-Authenticate": exc.challenge()},
            scope=" ".join(exc.scopes),
        )
    slug, title = _AUTH_SLUGS.get(exc.status, ("unauthenticated", "Unauthorized"))
    headers = {"WWW-Authenticate": exc.challenge()} if exc.status == 401 else {"Retry-After": "5"}
    return Problem(exc.status, slug, title, exc.description, headers=headers)


_UNAVAILABLE: tuple[type[Exception], ...] = (
    NatsError,
    OSError,
    TimeoutError,  # PoolExhausted and asyncpg's statement timeout too
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def overloaded(detail: str, retry_after: int = 1) -> Problem:
    """503 ``overloaded``: this process is at a capacity limit (connections, database pool, streams)."""
    headers = {"Retry-After": str(retry_after)}
    return Problem(503, "overloaded", "Service unavailable", detail, headers=headers)


def rate_limited(detail: str, retry_after: int) -> Problem:
    """429 ``rate-limited``: the client sent more than its rate limit allows."""
    return Problem(
        429, "rate-limited", "Too Many Requests", detail, headers={"Retry-After": str(retry_after)}
    )


def count_rejection(scope: Scope, reason: str) -> None:
    """Count a request refused for load (``eda_http_rejections_total``), once the app's context exists."""
    ctx = getattr(scope["app"].state, "ctx", None)
    if ctx is not None:
        ctx.metrics.rejections.labels(reason).inc()


def to_problem(exc: Exception) -> Problem:
    """Map an exception to the problem the client should see."""
    match exc:
        case Problem():
            return exc
        case AuthError():
            return _auth_problem(exc)
        case VersionMismatch():
            return Problem(
                412, "stale-version", "Precondition failed", f"the order is at version {exc.expected.version}"
            )
        case ConcurrencyError():
            return Problem(409, "concurrency-conflict", "Conflict", "the order changed concurrently; retry")
        case AmountMismatch():  # names the total the catalog says, so a client can show it
            return Problem(
                422,
                exc.code,
                "Amount does not match",
                exc.message,
                total=float(exc.total),
                currency=exc.currency,
            )
        case DomainError():
            for cls, status in _DOMAIN_STATUS:
                if isinstance(exc, cls):
                    return Problem(status, exc.code, exc.code.replace("-", " ").capitalize(), exc.message)
            return Problem(409, exc.code, "Conflict", exc.message)
        case PoolExhausted():
            return overloaded("every database connection of this process is busy; retry")
        case _ if isinstance(exc, (EventStoreError, *_UNAVAILABLE)):
            return Problem(
                503,
                "unavailable",
                "Service unavailable",
                "a backing service did not answer; retry",
                headers={"Retry-After": "1"},
            )
        case _:
            return Problem(500, "internal", "Internal server error", "an unexpected error was logged")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8): invalid input
            bad = Problem(422, "validation-error", "Invalid request", "the body is not valid UTF-8 JSON")
            return problem_response(bad, request.url.path)
        problem = Problem(
            exc.status_code, None, _title(exc.status_code), str(exc.detail), headers=dict(exc.headers or {})
        )
        return problem_response(problem, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problem = Problem(
            422,
            "validation-error",
            "Invalid request",
            "the request does not match the API schema",
            errors=_validation_errors(exc),
        )
        return problem_response(problem, request.url.path)

    async def on_any(request: Request, exc: Exception) -> Response:
        problem = to_problem(exc)
        if problem.slug == "overloaded":  # expected under overload: counted, not logged line by line
            log.debug("%s %s shed: %s", request.method, request.url.path, exc)
            count_rejection(request.scope, "db_pool")
        elif problem.status >= 500 and not isinstance(exc, AuthError):
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(problem, request.url.path)

    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Problem, on_any)
    app.add_exception_handler(AuthError, on_any)
    app.add_exception_handler(DomainError, on_any)
    app.add_exception_handler(ConcurrencyError, on_any)
    app.add_exception_handler(EventStoreError, on_any)
    # The errors of unavailable or overloaded dependencies, each by its class: the catch-all Exception
    # handler runs in Starlette's ServerErrorMiddleware, which re-raises after answering, and uvicorn
    # then logs a second traceback and CLOSES the keep-alive connection after the 503 — the client's
    # next request on it was reset. Only a true 500 (a bug) should take that way.
    for unavailable in _UNAVAILABLE:
        app.add_exception_handler(unavailable, on_any)
    app.add_exception_handler(Exception, on_any)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
