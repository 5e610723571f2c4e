"""What the HTTP load benchmarks share: the system as separate ``eda`` processes on embedded servers,
readiness polling, and percentiles. Imported by the benchmark scripts run as
``.venv/bin/python benchmarks/<name>.py`` (their folder is then on ``sys.path``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from app.devstack import embedded_stack, free_port

EDA = str(Path(sys.executable).parent / "eda")


@dataclass(frozen=True)
class System:
    """Where the running system answers."""

    base_url: str
    dsn: str
    nats_url: str


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    """Poll ``url`` until it answers 200 (30 s at most)."""
    for _ in range(300):
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(url)


@contextlib.asynccontextmanager
async def running_system(
    roles: Sequence[Sequence[str]], extra_env: dict[str, str] | None = None
) -> AsyncIterator[System]:
    """Embedded NATS (``sync_interval: always``) + PostgreSQL in a temp dir, ``eda api`` on a free port
    and one ``eda <role...>`` process per entry of ``roles``; all stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
        data = Path(tmp)
        os.chmod(data, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_stack(data) as (nats, pg):
            port = free_port()
            env = (
                dict(os.environ)
                | {
                    "EDA_NATS_URL": nats.url,
                    "EDA_DATABASE_URL": pg.dsn,
                    "EDA_HEALTH_PORT": "0",
                    "EDA_LOG_LEVEL": "WARNING",
                }
                | (extra_env or {})
            )
            commands = [["api", "--host", "127.0.0.1", "--port", str(port)], *map(list, roles)]
            procs = [subprocess.Popen([EDA, *cmd], env=env) for cmd in commands]  # noqa: ASYNC220
            try:
                yield System(f"http://127.0.0.1:{port}", pg.dsn, nats.url)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await asyncio.to_thread(proc.wait, 15)
