"""PostgreSQL plumbing shared by the read side: pools, identifier quoting, advisory-lock keys.

The read model is addressed by schema name everywhere (rebuilds build a shadow schema and swap it in),
so SQL is written as functions of ``schema`` and identifiers are quoted with ``quote_ident``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Generator
from typing import Any

import asyncpg

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier; only plain identifiers are accepted (no injection surface)."""
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}")
    return f'"{name}"'


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` derived from ``name`` (same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: ``jsonb`` values as Python objects."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str) -> asyncpg.Connection:
    """One dedicated connection (leases, LISTEN), initialised like pool connections."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


class PoolExhausted(TimeoutError):
    """No pool connection became free within the pool's acquire timeout: the process is overloaded."""


class _Acquire:
    """``pool.acquire()`` that raises ``PoolExhausted`` instead of a bare ``TimeoutError``."""

    def __init__(self, inner: Any, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._inner.__aenter__()
        except TimeoutError as exc:
            raise PoolExhausted(f"no database connection free within {self._timeout:g} s") from exc

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)

    def __await__(self) -> Generator[Any, None, asyncpg.Connection]:
        return self.__aenter__().__await__()


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """An asyncpg pool whose every ``acquire`` (also inside ``pool.fetch``/``execute``/...) waits at most
    ``acquire_timeout`` seconds: under overload a request fails fast with ``PoolExhausted`` (a 503
    problem in the API) instead of queueing behind the pool without bound."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        wait = self.acquire_timeout if timeout is None else timeout
        return _Acquire(super().acquire(timeout=wait), wait)


async def create_pool(
    dsn: str,
    *,
    size: int = 10,
    acquire_timeout: float | None = None,
    command_timeout: float | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose connections decode ``jsonb``; ``min_size`` is small so idle roles stay light.
    ``acquire_timeout``: a ``BoundedPool`` (see there); ``command_timeout``: asyncpg's default statement
    timeout (``TimeoutError``, the statement is cancelled on the server)."""
    if acquire_timeout is None:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(2, size),
            max_size=size,
            init=init_connection,
            command_timeout=command_timeout,
            **kwargs,
        )
        assert pool is not None
        return pool
    bounded = BoundedPool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min(2, size),
        max_size=size,
        init=init_connection,
        command_timeout=command_timeout,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        **kwargs,
    )
    await bounded
    return bounded
