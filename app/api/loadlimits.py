"""Load limits at the API's edge (docs/security.md § Abuse limits): the per-client rate limit (429) and
the server's concurrency limit (503), both RFC 9457 problems with ``Retry-After``.

``RateLimit`` (pure ASGI middleware) counts every request to ``/api/v1/`` and ``/ui/api/`` against its
client in sliding-window counters in process memory (``app.api.ratewindow``: O(1) memory per client,
a few µs a request; the ``limits`` library parses the limits). The client is the authenticated
subject when the request carries a valid token, else the peer address (``X-Forwarded-For`` only from
``EDA_TRUSTED_PROXIES``: uvicorn's proxy headers rewrite the peer before we see it). A trusted backend
(``orders:write:any``) gets ``EDA_RATE_LIMIT_TRUSTED``, everyone else ``EDA_RATE_LIMIT``. The limits
are per API process: with N replicas a client may send up to N times as much (docs/security.md says
how to size them).

``ShedOverload`` answers the requests uvicorn's ``limit_concurrency`` refused (``OVERLOADED`` in the
scope, set by ``app.runtime.server``) — except ``/livez`` and ``/readyz``: probes of an overloaded pod
must not get it restarted or, on every pod at once, take the whole Service out.
"""

from __future__ import annotations

import limits
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import count_rejection, overloaded, problem_response, rate_limited
from app.api.ratewindow import SlidingWindows
from app.auth.errors import AuthError
from app.auth.scopes import Principal
from app.auth.scopes import Scope as AuthScope

OVERLOADED = "eda.overloaded"
PROBES = frozenset({"/livez", "/readyz"})
LIMITED_PREFIXES = ("/api/v1/", "/ui/api/")


class ShedOverload:
    """503 ``overloaded`` (``Connection: close``) for a request uvicorn's concurrency limit refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get(OVERLOADED) and scope["path"] not in PROBES:
            count_rejection(scope, "overloaded")
            problem = overloaded("this server has too many requests in flight; retry")
            problem.headers["Connection"] = "close"
            await problem_response(problem, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RateLimit:
    """429 ``rate-limited`` once a client exceeds its limits (``""`` for a limit: that one is off)."""

    def __init__(self, app: ASGIApp, *, default: str, trusted: str) -> None:
        self.app = app
        self.default = limits.parse_many(default) if default.strip() else []
        self.trusted = limits.parse_many(trusted) if trusted.strip() else []
        self.windows = SlidingWindows()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key, items = await self._client(scope)
        for item in items:
            if not self.windows.hit(item, key):
                count_rejection(scope, "rate_limited")
                retry_after = self.windows.retry_after(item, key)
                problem = rate_limited(f"more than {item} from this client; slow down", retry_after)
                await problem_response(problem, scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _client(self, scope: Scope) -> tuple[str, list[limits.RateLimitItem]]:
        """Who is asking, and which limits apply to it."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        principal: Principal | None = None
        try:
            auth = scope["app"].state.ctx.auth
            principal = await auth.authenticate_request(scope, header.decode("latin-1") if header else None)
        except (AuthError, AttributeError):  # no valid token (the route answers 401), or not started
            principal = None
        trusted = principal is not None and principal.has(AuthScope.ORDERS_WRITE_ANY)
        if principal is not None and principal.kind == "token":
            key = f"sub:{principal.subject}"
        else:  # no token, or a principal every tokenless caller shares (auth disabled, eda dev)
            client = scope.get("client")
            key = f"peer:{client[0] if client else 'unknown'}"
        return key, self.trusted if trusted else self.default
