"""Tracing overhead benchmark (not a test): API order creates/s and p99 latency with tracing off, at
the production sampler (the chart's default) and always on — in ONE run.

Setup: embedded nats-server (``sync_interval: always``) + PostgreSQL in a temp dir; ``eda api`` as a
SEPARATE process, restarted for every run with one of these environments:

- ``off``: ``OTEL_TRACES_SAMPLER=always_off``, no endpoint: tracing off, metrics as usual (the
  baseline; with ``OTEL_SDK_DISABLED=true`` the OpenTelemetry metrics would be gone as well),
- ``ratio``: the chart's default, ``parentbased_traceidratio`` at ``0.1`` with OTLP/HTTP export: one new
  trace in ten is recorded and exported (the FastAPI instrumentation runs for every request),
- ``on``: ``always_on`` with the same export (every request traced: the server span, the ``send`` span
  of the append). Measured and reported; not a target.

Export goes to a local receiver in this process that decodes nothing and answers 200 (batches every
200 ms). Each run: wait for ``/livez``, 2 s warm-up, then ``--seconds`` of ``--clients`` concurrent
keep-alive loops POSTing ``/api/v1/orders``; creates/s counts ``201`` answers, latency is each POST's
round trip (p50/p99 over the window), and the API process's CPU time (``/proc/<pid>/stat``) per create
is measured over the same window — the steadier overhead figure on a shared machine. Variants rotate
for ``--rounds`` rounds; medians are compared. Targets (issue 19): ``ratio`` within 10 % of ``off`` in
throughput and within 15 % in p99.

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
from harness import NO_SAGA, pct, role_env

from app.dev.process import free_port
from app.dev.stack import embedded_stack
from app.runtime.bootstrap import prepare
from app.settings import Settings

EDA = str(Path(sys.executable).parent / "eda")
TARGET_THROUGHPUT = 0.10  # ratio's creates/s within 10 % of off
TARGET_P99 = 0.15  # ratio's p99 within 15 % of off
VARIANTS = ("off", "ratio", "on")


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


async def load(
    base: str, clients: int, seconds: float, warmup: float, pid: int
) -> tuple[float, float, list[float]]:
    connector = aiohttp.TCPConnector(limit=clients)
    created = 0
    latencies: list[float] = []
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
            body = {"user_id": n + 1, "items": [{"product_id": 1, "quantity": 2}]}  # priced by the server
            while loop.time() < stop_at:
                started = loop.time()
                async with session.post(f"{base}/api/v1/orders", json=body) as resp:
                    await resp.read()
                if resp.status == 201 and started >= measure_from:
                    created += 1
                    latencies.append(loop.time() - started)

        await asyncio.gather(meter_cpu(), *(client(n) for n in range(clients)))
    return created / seconds, (cpu[1] - cpu[0]) / max(created, 1) * 1e6, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_variant(env: dict[str, str], clients: int, seconds: float) -> tuple[float, float, float]:
    """(creates/s, API CPU microseconds per create — robust to other load on the machine, p99 in ms)."""
    port = free_port()
    proc = subprocess.Popen([EDA, "api", "--host", "127.0.0.1", "--port", str(port)], env=env)  # noqa: ASYNC220
    try:
        rate, cpu, latencies = await load(f"http://127.0.0.1:{port}", clients, seconds, 2.0, proc.pid)
        return rate, cpu, pct(latencies, 0.99) * 1000
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)


def variants(base: dict[str, str], otlp: str) -> dict[str, dict[str, str]]:
    exporting = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRICS_EXPORTER": "none",
    }
    return {
        "off": base | {"OTEL_TRACES_SAMPLER": "always_off"},
        "ratio": base
        | exporting
        | {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        "on": base | exporting | {"OTEL_TRACES_SAMPLER": "always_on"},
    }


def summarise(runs: dict[str, dict[str, list[float]]], clients: int, seconds: float) -> dict[str, object]:
    med = {v: {k: statistics.median(xs) for k, xs in runs[v].items()} for v in VARIANTS}
    off = med["off"]

    def vs_off(variant: str) -> dict[str, float]:
        m = med[variant]
        return {
            "throughput_change": round(m["creates_per_s"] / off["creates_per_s"] - 1, 4),
            "p99_change": round(m["p99_ms"] / off["p99_ms"] - 1, 4),
            "cpu_per_create_change": round(m["cpu_us_per_create"] / off["cpu_us_per_create"] - 1, 4),
        }

    ratio = vs_off("ratio")
    return {
        "runs": runs,
        "medians": {v: {k: round(x, 1) for k, x in med[v].items()} for v in VARIANTS},
        "ratio_vs_off": ratio,
        "on_vs_off": vs_off("on"),
        "targets": {"throughput_within": TARGET_THROUGHPUT, "p99_within": TARGET_P99},
        "met": -ratio["throughput_change"] <= TARGET_THROUGHPUT and ratio["p99_change"] <= TARGET_P99,
        "clients": clients,
        "seconds": seconds,
    }


async def main(rounds: int, seconds: float, clients: int) -> dict[str, object]:
    runner, otlp, received = await receiver()
    runs: dict[str, dict[str, list[float]]] = {
        v: {"creates_per_s": [], "cpu_us_per_create": [], "p99_ms": []} for v in VARIANTS
    }
    try:
        with tempfile.TemporaryDirectory(prefix="eda-bench-") as tmp:
            os.chmod(tmp, 0o711)  # reachable by the postgres system user when run as root
            async with embedded_stack(Path(tmp)) as (nats, pg):
                await prepare(Settings(nats_url=nats.url, database_url=pg.dsn))  # type: ignore[arg-type]
                # tracing is the variable here: no token checks in any variant (api_load.py --auth
                # compare measures their cost); the generator is trusted, never rate limited
                base = (
                    role_env(nats.url, pg.dsn)
                    | NO_SAGA
                    | {
                        "EDA_AUTH_MODE": "disabled",
                        "EDA_DEFAULT_PRICE": "19.99",
                    }
                )
                for key in [k for k in base if k.startswith("OTEL_")]:
                    del base[key]
                envs = variants(base, otlp)
                for i in range(rounds):
                    for name in VARIANTS[i % 3 :] + VARIANTS[: i % 3]:  # rotate the order each round
                        rate, us, p99 = await run_variant(envs[name], clients, seconds)
                        for key, value in (
                            ("creates_per_s", rate),
                            ("cpu_us_per_create", us),
                            ("p99_ms", p99),
                        ):
                            runs[name][key].append(round(value, 1))
                        print(
                            f"round {i + 1} {name:>5}: {rate:8.1f} creates/s  p99 {p99:6.1f} ms"
                            f"  {us:7.0f} us CPU/create",
                            flush=True,
                        )
    finally:
        await runner.cleanup()
    summary = summarise(runs, clients, seconds) | {
        "otlp_requests": len(received),
        "otlp_bytes": sum(received),
    }
    print(json.dumps(summary, indent=2))
    out = Path(__file__).parent / "results" / "tracing_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    uvloop.run(main(args.rounds, args.seconds, args.clients))
