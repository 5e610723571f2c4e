"""Continuous protection: a JetStream mirror of ``EVENTS`` in a second NATS cluster (or account).

The mirror lives on the disaster-recovery side and pulls from the primary through its JetStream API
prefix (``$JS.<domain>.API`` across a leafnode connection, or an account import): the primary does not
need to know about it. A mirror keeps the origin's sequence numbers, so restoring the mirror's archive
as ``EVENTS`` gives back the same log (``app.backup.restore`` with ``--from-mirror``).

``lag`` compares both sides: messages the mirror lacks, and how old the oldest of them is (the data a
disaster at this instant would lose: the mirror's recovery point).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.api import ExternalStream, StorageType, StreamConfig, StreamSource

from app.backup.manifest import MirrorCheck
from app.backup.snapshotapi import SnapshotError, stream_info
from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import STREAM, ensure_stream
from app.settings import Settings

DEFAULT_MIRROR_STREAM = STREAM


class MirrorError(RuntimeError):
    """The mirror is missing, broken or behind more than allowed."""


def mirror_config(name: str, source_domain: str | None, replicas: int) -> StreamConfig:
    """A mirror of the primary's ``EVENTS``; ``source_domain`` is the primary's JetStream domain when
    the mirror reaches it across a leafnode (``None``: same domain, e.g. another account)."""
    external = ExternalStream(api=f"$JS.{source_domain}.API") if source_domain else None
    return StreamConfig(
        name=name,
        mirror=StreamSource(name=STREAM, external=external),
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_direct=True,
        description="mirror of the eda event log (disaster recovery)",
    )


async def create_mirror(nc: NATS, name: str, source_domain: str | None, replicas: int) -> None:
    """Create (or update) the mirror stream on the disaster-recovery side."""
    await ensure_stream(nc.jetstream(), mirror_config(name, source_domain, replicas))


async def connect_mirror(settings: Settings, url: str, creds: str | None = None) -> NATS:
    """A connection to the mirror's cluster (same TLS settings, its own URL and credentials)."""
    update: dict[str, Any] = {"nats_url": url, "nats_user": None, "nats_password": None, "nats_creds": creds}
    return await connect_nats(settings.model_copy(update=update), name="eda-backup-mirror")


def _seconds_since(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - moment).total_seconds(), 0.0)


async def lag(primary: NATS, mirror: NATS, name: str = DEFAULT_MIRROR_STREAM) -> MirrorCheck:
    """Where the mirror stands against the primary's ``EVENTS`` right now."""
    source = await stream_info(primary, STREAM)
    if source is None:
        raise MirrorError(f"the primary has no {STREAM} stream")
    info = await stream_info(mirror, name)
    if info is None:
        raise MirrorError(f"the mirror side has no stream {name!r} (create it: eda mirror create)")
    if "mirror" not in info.get("config", {}):
        raise MirrorError(f"stream {name!r} on the mirror side is not a mirror")
    source_last = int(source["state"]["last_seq"])
    mirror_last = int(info["state"]["last_seq"])
    behind = max(source_last - mirror_last, 0)
    lag_s = 0.0
    if behind:
        first_missing = await _message_time(primary, mirror_last + 1)
        lag_s = _seconds_since(first_missing)
    detail = info.get("mirror") or {}
    active_ns = detail.get("active")
    return MirrorCheck(
        stream=name,
        source_last_sequence=source_last,
        mirror_last_sequence=mirror_last,
        lag_messages=behind,
        lag_seconds=round(lag_s, 3),
        active_seconds_ago=round(active_ns / 1e9, 3)
        if isinstance(active_ns, int) and active_ns >= 0
        else None,
        error=(detail.get("error") or {}).get("description") if detail.get("error") else None,
    )


async def _message_time(nc: NATS, sequence: int) -> datetime | None:
    """When the primary stored message ``sequence`` (``None`` if it cannot be read)."""
    try:
        msg = await nc.jetstream().get_msg(STREAM, seq=sequence)
    except Exception:  # deleted meanwhile or not readable: no age to report
        return None
    return msg.time


def check(result: MirrorCheck, max_lag_s: float | None) -> None:
    """``MirrorError`` when the mirror reports an error or is further behind than ``max_lag_s``."""
    if result.error:
        raise MirrorError(f"mirror {result.stream}: {result.error}")
    if max_lag_s is not None and result.lag_seconds > max_lag_s:
        raise MirrorError(
            f"mirror {result.stream} is {result.lag_messages} events / {result.lag_seconds:.1f}s behind "
            f"(allowed: {max_lag_s:.1f}s)"
        )


async def wait_caught_up(primary: NATS, mirror: NATS, name: str, timeout: float) -> MirrorCheck:
    """Poll until the mirror holds every event the primary has now (e.g. before a planned failover)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await lag(primary, mirror, name)
        if result.lag_messages == 0 or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


__all__ = ["SnapshotError", "check", "connect_mirror", "create_mirror", "lag", "mirror_config"]
