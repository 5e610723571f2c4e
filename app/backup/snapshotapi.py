"""JetStream's stream snapshot and restore API, which nats.py does not wrap (nats-server >= 2.15's
"v2" archive: every message with its sequence, timestamp, subject and headers, plus the durable
consumers' states bounded to the snapshot's last sequence; S2-compressed).

- Snapshot: ``$JS.API.STREAM.SNAPSHOT.<stream>`` with ``deliver_subject`` answers with the stream's
  config and state at that instant (exactly what the archive will hold); the server then sends the
  archive in chunks to the deliver subject, each with a reply subject to acknowledge (flow control: at
  most ``window`` bytes unacknowledged), and ends with an empty message whose status is 204 (or an
  error status: 408 no interest / no flow response, 500 a read failure).
- Restore: ``$JS.API.STREAM.RESTORE.<stream>`` with ``config`` and ``state`` (the stream must not exist)
  answers with a deliver subject; each piece of the archive is sent as a request (an empty reply means
  it was stored; a JSON reply is an error) and an empty request ends it, answered with the stream info.
  The server stores each message as it arrives (one fsync per message under ``sync_interval: always``)
  and gives up when one piece takes more than 5 s, so a piece holds about ``RESTORE_PIECE_MESSAGES``
  messages (``restore_piece_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from app.eventstore import jsapi

SNAPSHOT_CHUNK_BYTES = 256 * 1024
SNAPSHOT_WINDOW_BYTES = 8 * 1024 * 1024
RESTORE_PIECE_BYTES = 16 * 1024
RESTORE_PIECE_MESSAGES = 64  # ~64 fsyncs per piece: far below the server's 5 s limit even on a slow disk
IDLE_TIMEOUT_S = 30.0


class SnapshotError(RuntimeError):
    """The server refused or broke off a snapshot or a restore (its description included)."""

    def __init__(self, message: str, err_code: int | None = None) -> None:
        super().__init__(message)
        self.err_code = err_code


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    config: dict[str, Any]
    state: dict[str, Any]


def _error(reply: dict[str, Any], what: str) -> SnapshotError | None:
    err = reply.get("error")
    if not err:
        return None
    return SnapshotError(f"{what}: {err.get('description', err)}", err.get("err_code"))


async def snapshot(
    nc: NATS,
    stream: str,
    sink: Callable[[bytes], Awaitable[None]],
    *,
    consumers: bool = True,
    chunk_bytes: int = SNAPSHOT_CHUNK_BYTES,
    window_bytes: int = SNAPSHOT_WINDOW_BYTES,
    timeout: float = 10.0,
) -> SnapshotInfo:
    """Stream a snapshot of ``stream`` into ``sink`` (awaited per chunk before it is acknowledged, so a
    slow sink slows the server down instead of piling chunks up in memory)."""
    inbox = nc.new_inbox()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    activity = asyncio.Event()

    async def on_chunk(msg: Msg) -> None:
        activity.set()
        if done.done():
            return
        if not msg.data:
            status = (msg.headers or {}).get("Status")
            if status in (None, "204"):
                done.set_result(None)
            else:
                description = (msg.headers or {}).get("Description", "")
                done.set_exception(SnapshotError(f"snapshot of {stream} broken off: {status} {description}"))
            return
        try:
            await sink(msg.data)
        except Exception as exc:
            done.set_exception(exc)
            return
        if msg.reply:
            await nc.publish(msg.reply, b"")

    sub = await nc.subscribe(inbox, cb=on_chunk, pending_bytes_limit=4 * SNAPSHOT_WINDOW_BYTES)
    try:
        request = {
            "deliver_subject": inbox,
            "no_consumers": not consumers,
            "chunk_size": chunk_bytes,
            "window_size": window_bytes,
        }
        msg = await nc.request(jsapi.stream_snapshot_subject(stream), orjson.dumps(request), timeout=timeout)
        reply = orjson.loads(msg.data)
        if (error := _error(reply, f"snapshot of {stream}")) is not None:
            raise error
        await _until_done(done, activity, f"snapshot of {stream}")
        return SnapshotInfo(config=reply["config"], state=reply["state"])
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _until_done(done: asyncio.Future[None], activity: asyncio.Event, what: str) -> None:
    """Wait for ``done``, failing when nothing arrives for ``IDLE_TIMEOUT_S``."""
    while True:
        activity.clear()
        waiter: asyncio.Future[Any] = asyncio.ensure_future(activity.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {done, waiter}
            finished, _ = await asyncio.wait(
                waiting, timeout=IDLE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if done in finished:
            done.result()
            return
        if not finished:
            raise SnapshotError(f"{what}: nothing received for {IDLE_TIMEOUT_S:.0f}s")


async def restore(
    nc: NATS,
    config: dict[str, Any],
    state: dict[str, Any],
    pieces: AsyncIterator[bytes],
    *,
    sent: Callable[[int], None] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Create stream ``config["name"]`` from an archive; returns the server's stream info (with the
    restored ``state``). ``sent(n)`` is told the size of each piece the server has stored."""
    name = config["name"]
    request = orjson.dumps({"config": config, "state": state})
    msg = await nc.request(jsapi.stream_restore_subject(name), request, timeout=timeout)
    reply = orjson.loads(msg.data)
    if (error := _error(reply, f"restore of {name}")) is not None:
        raise error
    deliver = reply["deliver_subject"]
    async for piece in pieces:
        answer = await nc.request(deliver, piece, timeout=timeout)
        if answer.data and (error := _error(orjson.loads(answer.data), f"restore of {name}")) is not None:
            raise error
        if sent is not None:
            sent(len(piece))
    final = await nc.request(deliver, b"", timeout=max(timeout, 120.0))
    info: dict[str, Any] = orjson.loads(final.data)
    if (error := _error(info, f"restore of {name}")) is not None:
        raise error
    return info


def restore_piece_bytes(archive_bytes: int, messages: int) -> int:
    """Bytes per restore request for an archive: ~``RESTORE_PIECE_MESSAGES`` messages, 1-16 KiB."""
    per_message = archive_bytes / max(messages, 1)
    return int(min(max(per_message * RESTORE_PIECE_MESSAGES, 1024), RESTORE_PIECE_BYTES))


async def stream_info(nc: NATS, stream: str, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """The stream's info as JSON (config and state as the server spells them), ``None`` if absent."""
    msg = await nc.request(jsapi.stream_info_subject(stream), b"", timeout=timeout)
    reply: dict[str, Any] = orjson.loads(msg.data)
    error = _error(reply, f"info of {stream}")
    if error is not None:
        if error.err_code == jsapi.STREAM_NOT_FOUND:
            return None
        raise error
    return reply
