"""PostgreSQL plumbing shared by the read side: pools, identifier quoting, advisory-lock keys.

The read model is addressed by schema name everywhere (rebuilds build a shadow schema and swap it in),
so SQL is written as functions of ``schema`` and identifiers are quoted with ``quote_ident``.
"""

from __future__ import annotations

import hashlib
import json
import re
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


async def create_pool(dsn: str, *, size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections decode ``jsonb``; ``min_size`` is small so idle roles stay light."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min(2, size), max_size=size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool
