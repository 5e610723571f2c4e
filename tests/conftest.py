"""Session fixtures: one real nats-server (JetStream) and one real PostgreSQL per test session, both on
free ports in a private temp dir (``app.dev.nats``, ``app.dev.postgres``), plus per-test isolation helpers.

- ``nats_server`` / ``nats_url``: the shared JetStream server; ``js_clean`` empties it before a test and
  provisions the streams, bucket and consumers (as ``eda provision`` does: roles only check them).
- ``postgres`` / ``database_url``: the shared PostgreSQL (``fast=True``: no fsync); ``database_url`` is the
  ``eda`` database, shared; ``fresh_db`` gives a test its own empty database.
- ``short_tmp``: a short temp dir under /tmp that an unprivileged postgres user can reach when we run as
  root (pytest's ``tmp_path`` lives under a 0700 root-owned dir).
- ``idp``: the session's OpenID Connect provider (NanoIDP, a separate process: ``app.dev.idp``) and
  ``tokens``: access tokens minted by it, memoised per (subject, scope); ``auth_settings``: the
  ``Settings`` fields of an API that trusts it.
- ``nc`` (a client on an emptied JetStream), ``store`` (the event store on it), ``snapshots``;
  ``readmodel_dsn`` (``fresh_db`` with the read model migrated into schema ``readmodel``) and ``pool``
  (an asyncpg pool on it): the building blocks most integration and operator tests start from.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from idp_support import Tokens
from nats.aio.client import Client as NATS

from app.dev.idp import DevIdentityProvider
from app.dev.issuer import AUDIENCE
from app.dev.nats import NatsServer, embedded_nats
from app.dev.postgres import Postgres, embedded_postgres
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db
from app.readmodel.migrations import migrate_dsn
from tests.support.jetstream import reset_and_provision

READMODEL_SCHEMA = "readmodel"


def _mkdtemp(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # traversable (not listable) by the postgres system user when running as root
    return path


@pytest.fixture(scope="session")
def session_data_dir() -> Iterator[Path]:
    """Data dir for the session's servers, removed at the end."""
    path = _mkdtemp("eda-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A fresh, short temp dir for tests that start their own servers; removed afterwards."""
    path = _mkdtemp("eda-t-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def nats_server(session_data_dir: Path) -> AsyncIterator[NatsServer]:
    """The session's nats-server with JetStream (state is shared: use ``js_clean`` for isolation)."""
    async with embedded_nats(session_data_dir / "nats") as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture(scope="session")
async def postgres(session_data_dir: Path) -> AsyncIterator[Postgres]:
    """The session's PostgreSQL; database ``eda`` exists. Fast settings: no fsync."""
    async with embedded_postgres(session_data_dir / "postgres", fast=True) as pg:
        yield pg


@pytest.fixture(scope="session")
async def idp(session_data_dir: Path) -> AsyncIterator[DevIdentityProvider]:
    """The session's OIDC provider process; it also answers as ``http://localhost:<port>`` with that
    issuer (a real token from another issuer)."""
    provider = DevIdentityProvider(session_data_dir / "idp-home", issuer_aliases=True)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="session")
def tokens(idp: DevIdentityProvider) -> Tokens:
    return Tokens(idp.client())


@pytest.fixture(scope="session")
def auth_settings(idp: DevIdentityProvider) -> dict[str, str]:
    """``Settings`` fields of an API that trusts the session's provider (and prices unpriced products at
    99.99, as ``eda dev`` does)."""
    return {"auth_issuer": idp.issuer, "auth_audience": AUDIENCE, "default_price": "99.99"}


@pytest.fixture(scope="session")
def database_url(postgres: Postgres) -> str:
    """DSN of the shared ``eda`` database."""
    return postgres.dsn


@pytest.fixture
async def fresh_db(postgres: Postgres) -> AsyncIterator[str]:
    """DSN of a new, empty database for this test only; dropped afterwards (connections forced out)."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres.dsn_for("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres.dsn_for(name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def js_clean(nats_url: str) -> None:
    """Every JetStream stream (KV buckets and object stores too) deleted before the test, then what the
    roles need provisioned (``eda provision``: roles only check it)."""
    await reset_and_provision(nats_url)


@pytest.fixture
async def nc(nats_url: str, js_clean: None) -> AsyncIterator[NATS]:
    """A NATS client on the session's server, JetStream emptied first."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def store(nc: NATS) -> AsyncIterator[JetStreamEventStore]:
    """The event store (stream ``EVENTS`` created) on ``nc``."""
    s = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    yield s
    await s.close()


@pytest.fixture
async def snapshots(nc: NATS) -> SnapshotStore:
    return await SnapshotStore.open(nc.jetstream())


@pytest.fixture
async def readmodel_dsn(fresh_db: str) -> str:
    """``fresh_db`` with the read model migrated (schema ``readmodel``)."""
    await migrate_dsn(fresh_db, READMODEL_SCHEMA)
    return fresh_db


@pytest.fixture
async def pool(readmodel_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(readmodel_dsn, size=6)
    yield p
    await p.close()
