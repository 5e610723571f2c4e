"""Bulk reads of the event stream over a lean NATS connection of its own (rebuilds, replays).

nats-py spends most of its time per message (header parsing, ``Msg`` objects, callback queues): about
10k messages/s on one core, which caps a projection rebuild. Reading hundreds of thousands of events needs
none of that: this reader speaks the few protocol verbs a batched Direct Get (ADR-31) uses — ``CONNECT``,
``SUB``, ``PUB``, ``PING/PONG`` and ``HMSG`` — parses replies straight from the socket buffer, and returns
the same ``RawMessage`` records as ``DirectGetter``.

Supports user/password and token authentication and TLS. Anything else (e.g. a ``.creds`` file) makes
``BulkReader.from_client`` return ``None`` and callers fall back to ``DirectGetter``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from app.eventstore import jsapi
from app.eventstore.directget import pages
from app.eventstore.envelope import RawMessage
from app.eventstore.ports import EventStoreError

_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class _Endpoint:
    host: str
    port: int
    user: str | None
    password: str | None
    token: str | None
    tls: ssl.SSLContext | None
    inbox: str  # under the client's inbox prefix: a role may subscribe to its own prefix only


class BulkReader:
    """One lean connection issuing batched direct gets in sequence; not safe for concurrent use."""

    def __init__(self, endpoint: _Endpoint, stream: str, *, timeout: float = 10.0) -> None:
        self._ep = endpoint
        self._stream = stream
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buf = b""
        self._pos = 0
        self._lock = asyncio.Lock()
        self._requests = 0

    @classmethod
    def from_client(cls, nc: NATS, stream: str) -> BulkReader | None:
        """A reader for the server ``nc`` is connected to, with its credentials; ``None`` if unsupported."""
        url = nc.connected_url
        opts: dict[str, Any] = getattr(nc, "options", {})
        if url is None or opts.get("user_credentials") or opts.get("nkeys_seed") or opts.get("signature_cb"):
            return None
        tls = opts.get("tls")
        if url.scheme == "tls" and tls is None:
            tls = ssl.create_default_context()
        endpoint = _Endpoint(
            host=url.hostname or "127.0.0.1",
            port=url.port or 4222,
            user=url.username or opts.get("user"),
            password=url.password or opts.get("password"),
            token=opts.get("token"),
            tls=tls if isinstance(tls, ssl.SSLContext) else None,
            inbox=nc.new_inbox(),
        )
        return cls(endpoint, stream)

    async def _connect(self) -> None:
        ep = self._ep
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ep.host, ep.port), self._timeout)
        info_line = await asyncio.wait_for(reader.readline(), self._timeout)
        if not info_line.startswith(b"INFO "):
            writer.close()
            raise EventStoreError(f"unexpected greeting from {ep.host}:{ep.port}: {info_line[:60]!r}")
        info = orjson.loads(info_line[5:])
        if ep.tls is not None or info.get("tls_required"):
            ctx = ep.tls or ssl.create_default_context()
            await writer.start_tls(ctx, server_hostname=ep.host)
        connect: dict[str, Any] = {
            "verbose": False, "pedantic": False, "headers": True, "no_responders": True,
            "protocol": 1, "lang": "python-eda-bulk", "version": "1", "name": "eda-bulk-reader",
        }  # fmt: skip
        if ep.user is not None:
            connect["user"], connect["pass"] = ep.user, ep.password or ""
        elif ep.token is not None:
            connect["auth_token"] = ep.token
        writer.write(b"CONNECT " + orjson.dumps(connect) + b"\r\nPING\r\n")
        writer.write(f"SUB {ep.inbox}.* 1\r\n".encode())
        await writer.drain()
        self._reader, self._writer, self._buf, self._pos = reader, writer, b"", 0
        line = await self._line()
        while line.startswith((b"INFO", b"+OK")):
            line = await self._line()
        if line != b"PONG":
            await self.close()
            raise EventStoreError(f"bulk reader rejected: {line.decode(errors='replace')}")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None

    async def _fill(self) -> None:
        assert self._reader is not None
        chunk = await asyncio.wait_for(self._reader.read(1 << 20), self._timeout)
        if not chunk:
            raise EventStoreError("bulk reader: connection closed by server")
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0

    async def _line(self) -> bytes:
        while (end := self._buf.find(_CRLF, self._pos)) < 0:
            await self._fill()
        line = self._buf[self._pos : end]
        self._pos = end + 2
        return line

    async def _exact(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            await self._fill()
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    async def batches(
        self, subject_filter: str, from_sequence: int, *, batch: int = 5000, limit: int | None = None
    ) -> AsyncIterator[list[RawMessage]]:
        """Like ``DirectGetter.batches``: messages matching ``subject_filter`` in stream order."""
        async with self._lock:
            if self._writer is None:
                await self._connect()
            async for msgs in pages(
                self._closing_on_error, subject_filter, from_sequence, batch=batch, limit=limit
            ):
                yield msgs

    async def _closing_on_error(
        self, subject_filter: str, seq: int, size: int
    ) -> tuple[list[RawMessage], int]:
        try:
            return await self._one_batch(subject_filter, seq, size)
        except (OSError, TimeoutError, EventStoreError):
            await self.close()  # the connection is in an unknown state: the next read reconnects
            raise

    async def _one_batch(self, subject_filter: str, seq: int, size: int) -> tuple[list[RawMessage], int]:
        assert self._writer is not None
        self._requests += 1
        reply = f"{self._ep.inbox}.{self._requests}"
        body = jsapi.next_by_subject_request(seq, subject_filter, size)
        self._writer.write(
            f"PUB {jsapi.direct_get_subject(self._stream)} {reply} {len(body)}\r\n".encode() + body + _CRLF
        )
        await self._writer.drain()
        out: list[RawMessage] = []
        append = out.append
        want = reply.encode()
        while True:
            # parse every complete frame already buffered without a coroutine per message; only an
            # incomplete frame waits for more bytes
            buf, pos = self._buf, self._pos
            size_buf = len(buf)
            while (end := buf.find(_CRLF, pos)) >= 0:
                if buf.startswith(b"HMSG ", pos):
                    parts = buf[pos + 5 : end].split(b" ")
                    start = end + 2
                    hdr_end = start + int(parts[-2])
                    stop = start + int(parts[-1])
                    if stop + 2 > size_buf:
                        break
                    pos = stop + 2
                    if parts[0] != want:
                        continue  # a late reply to an abandoned request
                    if buf[start + 8] == 32:  # "NATS/1.0 <status>": end of batch or an error
                        self._pos = pos
                        status, headers = _parse_headers(buf[start:hdr_end])
                        if status == b"404":
                            return out, 0
                        if status == b"204":
                            return out, int(headers.get("Nats-Num-Pending", "0"))
                        raise EventStoreError(f"direct get failed: {status.decode()} {headers}")
                    append(_message(buf, start, hdr_end, stop))
                    continue
                if buf.startswith(b"MSG ", pos):
                    stop = end + 2 + int(buf[pos:end].rsplit(b" ", 1)[-1])
                    if stop + 2 > size_buf:
                        break
                    pos = stop + 2
                    continue
                line = buf[pos:end]
                pos = end + 2
                if line == b"PING":
                    self._writer.write(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    self._pos = pos
                    raise EventStoreError(f"bulk reader: server error {line.decode(errors='replace')}")
                # +OK, PONG, INFO: nothing to do
            self._pos = pos
            await self._fill()


_SEQ = b"\r\nNats-Sequence:"
_SUBJ = b"\r\nNats-Subject:"


def _message(buf: bytes, start: int, hdr_end: int, stop: int) -> RawMessage:
    """The stored message of one ``HMSG`` frame (header block ``buf[start:hdr_end]``, data up to ``stop``).
    The server appends its own headers last: they are searched from the end."""
    i = buf.rfind(_SEQ, start, hdr_end)
    j = buf.rfind(_SUBJ, start, hdr_end)
    if i < 0 or j < 0:
        raise EventStoreError("direct get reply without Nats-Sequence/Nats-Subject")
    i += len(_SEQ)
    j += len(_SUBJ)
    return _BulkMessage(
        int(buf[i : buf.find(_CRLF, i, hdr_end)]),
        buf[j : buf.find(_CRLF, j, hdr_end)].strip().decode(),
        buf[hdr_end:stop],
        buf[start:hdr_end],
    )


class _BulkMessage(RawMessage):
    """A ``RawMessage`` whose headers are parsed on first use (a bulk read needs sequence and subject
    only; parsing every header block dominated the cost of a rebuild)."""

    __slots__ = ("_block",)
    _block: bytes

    def __init__(self, sequence: int, subject: str, data: bytes, block: bytes) -> None:
        set_ = object.__setattr__
        set_(self, "sequence", sequence)
        set_(self, "subject", subject)
        set_(self, "data", data)
        set_(self, "_block", block)

    @property
    def headers(self) -> dict[str, str]:
        return _parse_headers(self._block)[1]


_WANTED = (b"Nats-Sequence", b"Nats-Subject", b"Nats-Msg-Id", b"Nats-Time-Stamp", b"Nats-Num-Pending")


def _parse_headers(block: bytes) -> tuple[bytes, dict[str, str]]:
    """``NATS/1.0[ status desc]\r\nKey: value\r\n...`` → (status, the headers readers use).

    Only the stream's own headers are extracted (sequence, subject, message id, time, pending): a
    full parse of every publish header would dominate the cost of a bulk read."""
    status = block[9:12] if block[8:9] == b" " else b""
    headers: dict[str, str] = {}
    for key in _WANTED:
        start = block.find(b"\r\n" + key + b":")
        if start >= 0:
            start += len(key) + 3
            end = block.find(b"\r\n", start)
            headers[key.decode()] = block[start:end].strip().decode()
    return status, headers
