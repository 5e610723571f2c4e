"""``Idempotency-Key`` for ``POST /api/v1/orders``, persisted in PostgreSQL (``eda.idempotency_keys``).

Keys are scoped per caller (the authenticated subject): two callers' equal keys are two keys, so
nobody can replay, or block, another caller's request by guessing its key.

Flow (``claim`` then ``complete``):
1. A stored, unexpired key is looked up first (one pooled statement): other fingerprint (method + path
   + canonical body) → 422; ``completed`` → the stored response is replayed byte for byte; ``pending``
   (the first attempt crashed, or is still running) → its stored order id is reused: creating the same
   order again is a no-op in the decider, so a retry never creates a second order nor burns an id.
2. A new key: the order id is allocated with NO database connection held (the counter may take
   seconds when NATS is slow; ten slow creates holding pool connections used to stall every read),
   then ONE transaction inserts ``(caller, key, fingerprint, 'pending', order_id)``. A concurrent
   request with the same key blocks on the unique index until the first commits, then takes step 1's
   way with the winner's id (its own id is a gap).
3. After the command, the response (status, body, headers) is stored and the key is ``completed``.

Keys live ``EDA_IDEMPOTENCY_TTL_S`` (24 h by default); expired keys are treated as new and purged.
An id is lost (a gap) only if a process dies between allocating it and committing the key row, or when
two requests with one new key race.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from app.api.errors import Problem


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    """The order id this request must use, and the response to replay if it already completed."""

    order_id: int
    replay: StoredResponse | None = None


def fingerprint(method: str, path: str, body: Any) -> str:
    """Hash of the request: method, path and the canonical JSON of the parsed body."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


_SELECT = (
    "SELECT fingerprint, state, order_id, response_status, response_body, response_headers "
    "FROM eda.idempotency_keys WHERE caller = $1 AND key = $2"
)


class IdempotencyStore:
    """Claims and completes idempotency keys."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: int) -> None:
        self._pool = pool
        self._ttl = float(ttl_s)

    async def claim(
        self, caller: str, key: str, print_: str, allocate: Callable[[], Awaitable[int]]
    ) -> Claim:
        known = await self._known(caller, key, print_)
        if known is not None:
            return known
        # A new key: the id is taken with NO pool connection held (the counter may take seconds when
        # NATS is slow; holding a connection meanwhile let a few slow creates starve every read).
        order_id = await allocate()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM eda.idempotency_keys "
                "WHERE caller = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)",
                caller,
                key,
                self._ttl,
            )
            inserted = await conn.fetchval(
                "INSERT INTO eda.idempotency_keys (caller, key, fingerprint, state, order_id) "
                "VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (caller, key) DO NOTHING RETURNING true",
                caller,
                key,
                print_,
                order_id,
            )
            if inserted:
                return Claim(order_id)
            # a concurrent request with the same key won the insert: its id holds, ours is a gap
            row = await conn.fetchrow(_SELECT + " FOR UPDATE", caller, key)
            if row is None:  # expired and purged between our statements: extremely unlikely
                raise Problem(409, "idempotency-key-in-flux", "Conflict", "retry the request")
            claim = self._existing(row, print_)
            if claim is not None:
                return claim
            await conn.execute(
                "UPDATE eda.idempotency_keys SET order_id = $3 WHERE caller = $1 AND key = $2",
                caller,
                key,
                order_id,
            )
        return Claim(order_id)

    async def _known(self, caller: str, key: str, print_: str) -> Claim | None:
        """The claim of a key already stored and not expired (``None``: new, or expired)."""
        row = await self._pool.fetchrow(
            _SELECT + " AND created_at >= now() - make_interval(secs => $3)", caller, key, self._ttl
        )
        return self._existing(row, print_)

    @staticmethod
    def _existing(row: asyncpg.Record | None, print_: str) -> Claim | None:
        if row is None:  # no such key (or an expired one): new
            return None
        if row["fingerprint"] != print_:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request",
            )
        if row["order_id"] is None:  # a row of an older version that crashed mid-claim: take a new id
            return None
        if row["state"] == "completed":
            stored = StoredResponse(row["response_status"], row["response_body"], row["response_headers"])
            return Claim(row["order_id"], stored)
        return Claim(row["order_id"])

    async def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        await self._pool.execute(
            "UPDATE eda.idempotency_keys SET state = 'completed', response_status = $3, "
            "response_body = $4, response_headers = $5, completed_at = now() "
            "WHERE caller = $1 AND key = $2 AND state = 'pending'",
            caller,
            key,
            response.status,
            response.body,
            response.headers,
        )

    async def purge_expired(self) -> int:
        result = await self._pool.execute(
            "DELETE FROM eda.idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", self._ttl
        )
        return int(str(result).rsplit(" ", 1)[-1])
