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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from app.dev.process import free_port
from app.dev.stack import embedded_stack
from app.runtime.bootstrap import prepare
from app.settings import Settings

EDA = str(Path(sys.executable).parent / "eda")


@dataclass(frozen=True)
class System:
    """Where the running system answers."""

    base_urls: tuple[str, ...]  # one per `eda api` replica (a Service would spread clients like this)
    dsn: str
    nats_url: str
    pids: dict[str, int]  # every process of the system by name (``api``, ``saga``, ``nats-server``...)

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


def _ticks(pid: int, reaped: bool = False) -> int:
    """User + system CPU ticks of ``pid``; ``reaped`` adds those of its children that have exited."""
    with contextlib.suppress(OSError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11 : 15 if reaped else 13])
    return 0


def _postgres_ticks() -> int:
    """All PostgreSQL processes (the postmaster and its backends), with the backends that exited (their
    time stays in the postmaster's children's time), so a connection closed mid-window costs nothing."""
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(entry, "comm").read_text().startswith("postgres"):
                    total += _ticks(int(entry.name), reaped=True)
    return total


def _machine() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


async def cpu_usage(pids: dict[str, int], warmup: float, seconds: float) -> dict[str, float]:
    """CPU of each process in ``pids`` and of PostgreSQL (% of one core) and the whole machine's busy and
    kernel share (% of one core times the cores), measured over the middle of the window a load
    generator started now measures (it waits for readiness + 2 s, then ``warmup``); Linux only."""
    await asyncio.sleep(warmup + 3.0)
    span = max(1.0, seconds - 2.0)
    before = {name: _ticks(pid) for name, pid in pids.items()}
    pg_before = _postgres_ticks()
    m0 = _machine()
    await asyncio.sleep(span)
    m1 = _machine()
    hz = os.sysconf("SC_CLK_TCK")
    out = {f"cpu_{name}_pct": (_ticks(pid) - before[name]) * 100 / hz / span for name, pid in pids.items()}
    out["cpu_postgres_pct"] = (_postgres_ticks() - pg_before) * 100 / hz / span
    d = [b - a for a, b in zip(m0, m1, strict=True)]  # user nice system idle iowait irq softirq steal
    total = sum(d) or 1
    cores = os.cpu_count() or 1
    out["machine_busy_pct"] = 100 * cores * (total - d[3] - d[4]) / total
    out["machine_kernel_pct"] = 100 * cores * (d[2] + d[5] + d[6]) / total
    return out


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_loop(
    rate: float,
    seconds: float,
    warmup: float,
    fire: Callable[[bool], Awaitable[None]],
    drain: float = 30.0,
) -> tuple[float, float]:
    """Call ``fire(measured)`` ``rate`` times a second for ``warmup + seconds``, each call in its own task
    and on schedule whatever the system answers (an open loop: a slow system faces a growing backlog, as
    with real clients); ``measured`` is true for calls started in the last ``seconds``. Returns that
    window as ``time.perf_counter()`` values once every call has returned, or ``drain`` seconds after
    the window (the calls still running are cancelled)."""
    tasks: set[asyncio.Task[None]] = set()
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + seconds)
    sent = 0
    while (now := time.perf_counter()) < window[1]:
        due = int((now - begin) * rate)
        while sent < due:
            task = asyncio.create_task(fire(now >= window[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.002)
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=drain)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    return window


def completion_stats(
    started: dict[int, float], completed: dict[int, float], window: tuple[float, float]
) -> dict[str, float]:
    """Throughput = completions (of any order) inside ``window`` / its length; latency = completion minus
    start of each order in ``started`` (those started in the window), as percentiles in ms."""
    in_window = sum(1 for t in completed.values() if window[0] <= t < window[1])
    latencies = [(completed[oid] - t) * 1000 for oid, t in started.items() if oid in completed]
    return {
        "completed_per_s": in_window / (window[1] - window[0]),
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "never_completed": sum(1 for oid in started if oid not in completed),
    }


async def watch_versions(dsn: str, version: int) -> tuple[asyncpg.Connection, dict[int, float]]:
    """A connection listening to the read model's ``eda_orders`` notifications, and when (``perf_counter``)
    each order was first seen at ``version`` (1: visible after a create; 4: its saga completed)."""
    seen: dict[int, float] = {}
    wanted = str(version)

    def on_notify(_c: object, _pid: int, _ch: str, payload: str) -> None:
        now = time.perf_counter()
        for part in payload.split(","):
            order_id, _, at = part.partition(":")
            if at == wanted:
                seen.setdefault(int(order_id), now)

    listener = await asyncpg.connect(dsn)
    await listener.add_listener("eda_orders", on_notify)
    return listener, seen


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


NO_SAGA = {"EDA_ADMISSION_SAGA_BACKLOG": "0"}
"""For benchmarks of the API without the saga role: nothing consumes the orchestrator's backlog there, so
admission (docs/saga.md § Admission) would start refusing the very load being measured."""


def role_env(nats_url: str, dsn: str) -> dict[str, str]:
    """The environment of the ``eda`` role processes a benchmark starts: this process's, the servers',
    no health ports, warnings only, and the load generator trusted."""
    return dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_DATABASE_URL": dsn,
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        # the load generators are trusted backends driving the system flat out: the rate limiter runs
        # (its cost is measured) but never refuses them
        "EDA_RATE_LIMIT_TRUSTED": "1000000/second",
    }


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
            await prepare(Settings(nats_url=nats.url, database_url=pg.dsn))  # type: ignore[arg-type]
            ports = [free_port() for _ in range(api_replicas)]
            env = role_env(nats.url, pg.dsn) | (extra_env or {})
            apis = [["api", "--host", "127.0.0.1", "--port", str(port)] for port in ports]
            commands = [*apis, *map(list, roles)]
            procs = [subprocess.Popen([EDA, *cmd], env=env) for cmd in commands]  # noqa: ASYNC220
            try:
                names = [f"api{i or ''}" for i in range(len(apis))] + [" ".join(r) for r in roles]
                pids = {name: p.pid for name, p in zip(names, procs, strict=True)}
                pids["nats-server"] = nats.pid or 0
                yield System(tuple(f"http://127.0.0.1:{port}" for port in ports), pg.dsn, nats.url, pids)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await asyncio.to_thread(proc.wait, 15)
