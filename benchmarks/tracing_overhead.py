"""Tracing overhead benchmark (not a test): API order creates/s with tracing OFF vs ON.

Setup: embedded nats-server (``sync_interval: always``) + PostgreSQL in a temp dir; ``eda api`` as a
SEPARATE process, restarted for every run with one of these environments:

- ``off``: ``OTEL_TRACES_SAMPLER=always_off``, no endpoint: tracing off, metrics as usual (the
  baseline; with ``OTEL_SDK_DISABLED=true`` the OpenTelemetry metrics would be gone as well),
- ``on``: ``OTEL_TRACES_SAMPLER=always_on`` and OTLP/HTTP export (``OTEL_EXPORTER_OTLP_ENDPOINT``) to a
  local receiver in this process that decodes nothing and answers 200 (every request is traced: the
  server span, the ``send`` span of the append; batches exported every 200 ms).

Each run: wait for ``/livez``, 2 s warm-up, then ``--seconds`` of ``--clients`` concurrent keep-alive
loops POSTing ``/api/v1/orders``; creates/s counts ``201`` answers, and the API process's CPU time
(``/proc/<pid>/stat``) per create is measured over the same window — the better overhead figure on a
shared machine, where throughput swings with other load. Variants alternate for ``--rounds`` rounds;
compare medians. Target: ON within 15% of OFF.

Run: ``.venv/bin/python benchmarks/tracing_overhead.py [--rounds 3] [--seconds 8] [--clients 64]``;
writes ``benchmarks/results/tracing_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web

from app.dev.stack import embedded_stack, free_port

EDA = str(Path(sys.executable).parent / "eda")
TARGET_OVERHEAD = 0.15


async def receiver() -> tuple[web.AppRunner, str, list[int]]:
    """An OTLP/HTTP sink: counts exported request bytes, answers 200 with an empty protobuf."""
    received: list[int] = []

    async def sink(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", received


async def load(base: str, clients: int, seconds: float, warmup: float, pid: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=clients)
    created = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/livez") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup
        stop_at = measure_from + seconds

        cpu: list[float] = []

        async def meter_cpu() -> None:
            await asyncio.sleep(max(0.0, measure_from - loop.time()))
            cpu.append(cpu_seconds(pid))
            await asyncio.sleep(max(0.0, stop_at - loop.time()))
            cpu.append(cpu_seconds(pid))

        async def client(n: int) -> None:
            nonlocal created
            body = {"user_id": n + 1, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}
            while loop.time() < stop_at:
                async with session.post(f"{base}/api/v1/orders", json=body) as resp:
                    await resp.read()
                if resp.status == 201 and loop.time() >= measure_from:
                    created += 1

        await asyncio.gather(meter_cpu(), *(client(n) for n in range(clients)))
    return created / seconds, (cpu[1] - cpu[0]) / max(created, 1) * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_variant(env: dict[str, str], clients: int, seconds: float) -> tuple[float, float]:
    """(creates/s, API CPU microseconds per create — robust to other load on the machine)."""
    port = free_port()
    proc = subprocess.Popen([EDA, "api", "--host", "127.0.0.1", "--port", str(port)], env=env)  # noqa: ASYNC220
    try:
        rate, cpu = await load(f"http://127.0.0.1:{port}", clients, seconds, 2.0, proc.pid)
        return rate, cpu
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)


async def main(rounds: int, seconds: float, clients: int) -> dict[str, object]:
    runner, otlp, received = await receiver()
    results: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
            os.chmod(tmp, 0o711)  # reachable by the postgres system user when run as root
            async with embedded_stack(Path(tmp)) as (nats, pg):
                base = dict(os.environ) | {
                    "EDA_NATS_URL": nats.url,
                    "EDA_DATABASE_URL": pg.dsn,
                    "EDA_HEALTH_PORT": "0",
                    "EDA_LOG_LEVEL": "WARNING",
                }
                for key in [k for k in base if k.startswith("OTEL_")]:
                    del base[key]
                variants = {
                    "off": base | {"OTEL_TRACES_SAMPLER": "always_off"},
                    "on": base
                    | {
                        "OTEL_TRACES_SAMPLER": "always_on",
                        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                        "OTEL_BSP_SCHEDULE_DELAY": "200",
                        "OTEL_METRICS_EXPORTER": "none",
                    },
                }
                for i in range(rounds):
                    order = ("off", "on") if i % 2 == 0 else ("on", "off")
                    for name in order:
                        rate, us = await run_variant(variants[name], clients, seconds)
                        results[name].append(round(rate, 1))
                        cpu[name].append(round(us, 1))
                        print(
                            f"round {i + 1} {name:>3}: {rate:8.1f} creates/s {us:7.0f} us CPU/create",
                            flush=True,
                        )
    finally:
        await runner.cleanup()
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    overhead = 1.0 - on / off if off else float("nan")
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    summary: dict[str, object] = {
        "runs": results,
        "cpu_us_per_create": cpu,
        "median_off": round(off, 1),
        "median_on": round(on, 1),
        "overhead": round(overhead, 4),
        "median_cpu_us_off": round(cpu_off, 1),
        "median_cpu_us_on": round(cpu_on, 1),
        "cpu_overhead": round(cpu_on / cpu_off - 1.0, 4) if cpu_off else None,
        "target": TARGET_OVERHEAD,
        "met": overhead <= TARGET_OVERHEAD,
        "otlp_requests": len(received),
        "otlp_bytes": sum(received),
        "clients": clients,
        "seconds": seconds,
    }
    print(json.dumps(summary, indent=2))
    out = Path(__file__).parent / "results" / "tracing_overhead.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    uvloop.run(main(args.rounds, args.seconds, args.clients))
