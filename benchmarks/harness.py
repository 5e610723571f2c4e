"""What the HTTP load benchmarks share: the system as separate ``eda`` processes on embedded servers,
readiness polling, and percentiles. Imported by the benchmark scripts run as
``.venv/bin/python benchmarks/<name>.py`` (their folder is then on ``sys.path``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
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

    base_urls: tuple[str, ...]  # one per `eda api` replica (a Service would spread clients like this)
    dsn: str
    nats_url: str

    @property
    def base_url(self) -> str:
        return self.base_urls[0]


def report(result: dict[str, float], targets: dict[str, float], name: str) -> None:
    """Print ``result`` as a metric/value/target table and write it to ``benchmarks/results/<name>``."""
    print(f"{'metric':<22}{'value':>12}{'target':>10}")
    for key, value in result.items():
        target = targets.get(key)
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{key:<22}{shown:>12}{'' if target is None else target:>10}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(result, indent=2))


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
    roles: Sequence[Sequence[str]], extra_env: dict[str, str] | None = None, *, api_replicas: int = 1
) -> AsyncIterator[System]:
    """Embedded NATS (``sync_interval: always``) + PostgreSQL in a temp dir, ``api_replicas`` ``eda api``
    processes on free ports and one ``eda <role...>`` process per entry of ``roles``; all stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
        data = Path(tmp)
        os.chmod(data, 0o711)  # reachable by the postgres system user when run as root
        async with embedded_stack(data) as (nats, pg):
            ports = [free_port() for _ in range(api_replicas)]
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
            apis = [["api", "--host", "127.0.0.1", "--port", str(port)] for port in ports]
            commands = [*apis, *map(list, roles)]
            procs = [subprocess.Popen([EDA, *cmd], env=env) for cmd in commands]  # noqa: ASYNC220
            try:
                yield System(tuple(f"http://127.0.0.1:{port}" for port in ports), pg.dsn, nats.url)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await asyncio.to_thread(proc.wait, 15)
