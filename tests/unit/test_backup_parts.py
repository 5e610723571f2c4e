"""The backup's pure parts: the plan's order around the cut, chunk files and their checksums, retention,
the restore config, the mirror-lag check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.backup import plan
from app.backup.chunks import ChunkError, ChunkWriter, check_chunk, read_chunks
from app.backup.manifest import MANIFEST, MirrorCheck
from app.backup.mirror import MirrorError, check
from app.backup.restore import restore_config
from app.backup.retention import new_backup_dir, prune
from app.eventstore.counters import STREAM as COUNTERS
from app.eventstore.jetstream import STREAM as EVENTS
from app.saga.timeouts import TIMERS_STREAM
from app.workers.commands import COMMANDS_STREAM


def test_plan_orders_the_parts_around_the_cut() -> None:
    names = [p.name for p in plan.PLAN]
    cut = names.index(EVENTS)
    assert plan.CUT == EVENTS
    assert names.index("KV_snapshots") < cut  # no snapshot refers past the cut
    assert names.index(COMMANDS_STREAM) < cut  # no command of a step started after the cut
    assert names.index(TIMERS_STREAM) > cut  # every timer armed before the cut
    assert names.index(plan.PG_SCHEMA) > cut  # every idempotency key completed before the cut
    assert names[-1] == COUNTERS  # the counter is above every id before it
    assert [p.name for p in plan.PLAN if p.required] == [EVENTS, plan.PG_SCHEMA]
    assert len(set(names)) == len(names)


def test_chunks_split_checksum_and_detect_corruption(tmp_path: Path) -> None:
    async def write() -> list:  # type: ignore[type-arg]
        writer = ChunkWriter(tmp_path, "streams/X", "s2", chunk_bytes=1000)
        for i in range(25):
            await writer.write(bytes([i]) * 100)
        return await writer.close()

    chunks = asyncio.run(write())
    assert [c.bytes for c in chunks] == [1000, 1000, 500]
    assert chunks[0].file == "streams/X/00000001.s2"
    for chunk in chunks:
        check_chunk(tmp_path, chunk)

    async def read() -> bytes:
        return b"".join([piece async for piece in read_chunks(tmp_path, chunks, 64)])

    assert asyncio.run(read()) == b"".join(bytes([i]) * 100 for i in range(25))
    path = tmp_path / chunks[1].file
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChunkError, match=r"00000002.s2 is corrupted"):
        check_chunk(tmp_path, chunks[1])
    with pytest.raises(ChunkError, match="changed since it was checked"):
        asyncio.run(read())
    path.write_bytes(bytes(data[:10]))
    with pytest.raises(ChunkError, match="has 10 bytes"):
        check_chunk(tmp_path, chunks[1])
    path.unlink()
    with pytest.raises(ChunkError, match="missing"):
        check_chunk(tmp_path, chunks[1])


def test_retention_keeps_the_newest_complete_backups(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for i in range(5):
        path = new_backup_dir(tmp_path, t0 + timedelta(hours=i))
        path.mkdir()
        (path / MANIFEST).write_text("{}")
        made.append(path.name)
    crashed = tmp_path / "20260101T013000Z"  # interrupted run between two complete ones
    crashed.mkdir()
    running = tmp_path / "20260102T000000Z"  # newer than every complete one: may be being written
    running.mkdir()
    same_second = new_backup_dir(tmp_path, t0 + timedelta(hours=4))
    assert same_second.name == f"{made[-1]}-2"
    kept = prune(tmp_path, 2)
    assert kept.kept == made[-2:]
    assert kept.removed == sorted([*made[:3], crashed.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*made[-2:], running.name])
    with pytest.raises(ValueError, match="keep"):
        prune(tmp_path, 0)


def test_restore_config_targets_this_cluster() -> None:
    config = {
        "name": "EVENTS",
        "num_replicas": 3,
        "placement": {"cluster": "old-east"},
        "metadata": {"_nats.level": "1", "owner": "eda"},
    }
    assert restore_config(config, 1) == {"name": "EVENTS", "num_replicas": 1, "metadata": {"owner": "eda"}}
    assert "metadata" not in restore_config({"name": "X", "metadata": {"_nats.ver": "2"}}, 3)


def test_mirror_check_fails_when_behind_or_broken() -> None:
    ok = MirrorCheck("EVENTS", 100, 100, 0, 0.0, 0.1)
    behind = MirrorCheck("EVENTS", 100, 40, 60, 12.5, 0.1)
    broken = MirrorCheck("EVENTS", 100, 40, 60, 12.5, None, error="stream not found")
    check(ok, 1.0)
    check(behind, None)  # no limit given: reported only
    check(behind, 30.0)
    with pytest.raises(MirrorError, match=r"60 events / 12.5s behind"):
        check(behind, 5.0)
    with pytest.raises(MirrorError, match="stream not found"):
        check(broken, None)
