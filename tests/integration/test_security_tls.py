"""NATS over TLS (``app.dev.nats.TlsFiles`` on the server, ``EDA_NATS_TLS_CA`` in the app): certificates
are made with ``tests.pki`` (a CA and a server certificate for 127.0.0.1/localhost). The event
store appends and loads and the lean bulk reader reads thousands of events over TLS; a plain-text client
and a client trusting another CA are refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from app.deploy.provision import provision
from app.dev.nats import NatsServer, TlsFiles
from app.dev.process import HOST
from app.domain.registry import all_event_types
from app.eventstore.bulkread import BulkReader
from app.eventstore.codec import EventCodec
from app.eventstore.connection import connect_nats
from app.eventstore.envelope import NEW, Metadata, NewEvent, StreamId
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.eventstore.ports import AppendRequest
from app.settings import Settings
from tests.pki import make_ca, make_server_cert, write_cert, write_key
from tests.support.orders import order_created, order_paid

T0 = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
META = Metadata(correlation_id="tls")


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    tls: TlsFiles


@pytest.fixture
def pki(short_tmp: Path) -> Pki:
    folder = short_tmp / "pki"
    folder.mkdir()
    ca_key, ca = make_ca("eda test CA")
    _, other = make_ca("some other CA")
    key, cert = make_server_cert(ca_key, ca, cn="eda-nats", ips=(HOST,))
    write_cert(ca, folder / "ca.pem")
    write_cert(other, folder / "other-ca.pem")
    write_cert(cert, folder / "server.pem")
    write_key(key, folder / "server-key.pem")
    return Pki(
        ca=folder / "ca.pem",
        other_ca=folder / "other-ca.pem",
        tls=TlsFiles(cert_file=folder / "server.pem", key_file=folder / "server-key.pem"),
    )


@pytest.fixture
async def tls_server(short_tmp: Path, pki: Pki) -> AsyncIterator[NatsServer]:
    server = NatsServer(short_tmp / "nats", tls=pki.tls)
    await server.start()  # the health check (plain-HTTP monitor port) still works
    try:
        yield server
    finally:
        await server.stop()


async def test_event_store_and_bulk_read_over_tls(tls_server: NatsServer, pki: Pki) -> None:
    settings = Settings(nats_url=tls_server.url, nats_tls_ca=str(pki.ca), health_port=0)
    nc = await connect_nats(settings, name="tls-test")
    await provision(nc, 1)  # over TLS too
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    try:
        assert nc.connected_url is not None
        assert nc._server_info.get("tls_required")  # the server really speaks TLS only
        streams = [StreamId("order", str(i)) for i in range(1, 51)]
        positions = dict.fromkeys(streams, NEW)
        for round_ in range(45):  # 2,250 events
            reqs = [
                AppendRequest(
                    s,
                    [
                        NewEvent(
                            event=order_created(int(s.aggregate_id))
                            if round_ == 0
                            else order_paid(int(s.aggregate_id))
                        )
                    ],
                    positions[s],
                )
                for s in streams
            ]
            for req, res in zip(reqs, await store.append_multi(reqs, META), strict=True):
                positions[req.stream] = res.position
        loaded = await store.load(streams[0])
        assert len(loaded.events) == 45
        last = await store.last_sequence()
        assert last == 2250
        # the lean reader itself (read_raw would silently fall back to nats-py on a TLS failure)
        bulk = BulkReader.from_client(nc, STREAM)
        assert bulk is not None
        try:
            got = [m async for batch in bulk.batches("events.>", 1, limit=last) for m in batch]
        finally:
            await bulk.close()
        assert [m.sequence for m in got] == list(range(1, last + 1))
        assert len(await store.read_raw(1, limit=10_000)) == last
    finally:
        await store.close()
        await nc.close()


async def test_plain_text_client_is_refused(tls_server: NatsServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, tls_server.port)
    try:
        info = await asyncio.wait_for(reader.readline(), 5)
        assert b'"tls_required":true' in info
        writer.write(b'CONNECT {"verbose":false,"tls_required":false}\r\nPING\r\n')
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(4096), 10)
        assert b"PONG" not in rest  # the server never talks plain text: it drops or errors
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def test_client_trusting_another_ca_is_refused(tls_server: NatsServer, pki: Pki) -> None:
    settings = Settings(nats_url=tls_server.url, nats_tls_ca=str(pki.other_ca), health_port=0)
    with pytest.raises(Exception, match=r"(?i)certificate verify failed|ssl"):
        await asyncio.wait_for(_connect_once(settings), 15)
    # and a client with the system trust store only (no EDA_NATS_TLS_CA) is refused as well
    with pytest.raises(Exception, match=r"(?i)certificate verify failed|ssl"):
        await nats.connect(tls_server.url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0)


async def _connect_once(settings: Settings) -> None:
    """``connect_nats`` retries forever; for a refusal we want the first error, so build the same SSL
    context as it does and connect once."""
    assert settings.nats_tls_ca is not None
    ctx = ssl.create_default_context(cafile=settings.nats_tls_ca)
    nc = await nats.connect(
        settings.nats_url, tls=ctx, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0
    )
    await nc.close()
