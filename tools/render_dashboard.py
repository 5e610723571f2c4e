"""Render the Grafana dashboard from a REAL run, for docs/img/dashboard.png (Grafana itself is not
packaged for this machine: not on PyPI, npm or in Debian).

1. The system as separate processes on embedded NATS + PostgreSQL (``eda api``, ``eda projector``,
   ``eda saga``, ``eda worker inventory|payment|shipping``), each serving ``/metrics``;
2. a real Prometheus (Debian's ``prometheus`` binary) scraping them every 2 s, started and stopped here;
3. load for ``--seconds``: orders (some declined by the payment worker, some payments failing
   transiently so they are retried), reads, a few bad requests;
4. every panel of ``helm/eda/files/dashboards/eda.json`` — its own titles, queries, legends, units and
   grid positions — queried from that Prometheus (``query_range``; ``$__rate_interval`` = 20s,
   ``$namespace`` = all) and drawn as SVG in a Grafana-like page, screenshot by headless Chromium.

Run: ``.venv/bin/python -P tools/render_dashboard.py [--seconds 150] [--out docs/img/dashboard.png]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from app.dev.process import free_port, stop_all
from app.dev.stack import embedded_stack
from app.runtime.bootstrap import prepare
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "helm" / "eda" / "files" / "dashboards" / "eda.json"
EDA = str(Path(sys.executable).parent / "eda")
ROLES = {"projector": ["projector"], "saga": ["saga"]} | {
    f"worker-{w}": ["worker", w] for w in ("inventory", "payment", "shipping")
}
COLORS = ["#73BF69", "#F2CC0C", "#5794F2", "#FF9830", "#F2495C", "#B877D9", "#8AB8FF", "#FADE2A", "#37872D"]
CELL_W, CELL_H, STEP_S = 64, 30, 4


@contextlib.contextmanager
def processes(commands: list[tuple[list[str], dict[str, str]]], log: Path) -> Iterator[None]:
    """Start every command (output to ``log``); SIGTERM, then SIGKILL, them all at the end."""
    with log.open("ab") as out:
        procs = [
            subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT) for cmd, env in commands
        ]
    try:
        yield
    finally:
        stop_all(procs, 20)


def prometheus_config(targets: dict[str, int]) -> str:
    configs = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": "eda", "role": role}}
        for role, port in targets.items()
    ]
    return json.dumps(  # JSON is YAML
        {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [{"job_name": "eda", "static_configs": configs}],
        }
    )


async def wait_ok(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def load(session: aiohttp.ClientSession, api: str, seconds: float, rate: float) -> None:
    """An open loop of ``rate`` orders/s (10 % declined), each read back once; a few bad requests."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        quantity = 30 if i % 10 == 0 else 1 + i % 3  # 30 x 19.99 is above the payment limit: declined
        body = {"user_id": i % 50 + 1, "items": [{"product_id": i % 5 + 1, "quantity": quantity}]}
        with contextlib.suppress(aiohttp.ClientError):
            async with session.post(f"{api}/api/v1/orders", json=body) as resp:
                created = await resp.json() if resp.status == 201 else None
            if created:
                await asyncio.sleep(0.5)
                async with session.get(f"{api}/api/v1/orders/{created['order_id']}") as resp:
                    await resp.read()
            if i % 40 == 0:
                async with session.post(f"{api}/api/v1/orders", json={"user_id": "x"}) as resp:
                    await resp.read()

    i = 0
    while loop.time() < stop:
        # the rate rises over the run, so the panels show a change
        current = rate * (0.5 + (1 - (stop - loop.time()) / seconds))
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
        await asyncio.sleep(random.expovariate(current))
    await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def running(seconds: float, rate: float, tmp: Path) -> AsyncIterator[tuple[str, float, float]]:
    """The system under load and Prometheus scraping it; yields (Prometheus URL, start, end)."""
    async with embedded_stack(tmp) as (nats, pg):
        await prepare(Settings(nats_url=nats.url, database_url=pg.dsn))
        api_port, prom_port = free_port(), free_port()
        ports = {"api": api_port} | {role: free_port() for role in ROLES}
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
            "EDA_NATS_URL": nats.url,
            "EDA_DATABASE_URL": pg.dsn,
            "EDA_LOG_LEVEL": "WARNING",
            "EDA_AUTH_MODE": "disabled",  # the picture is about metrics, not tokens
            "EDA_DEFAULT_PRICE": "19.99",
            "EDA_DEFAULT_STOCK": "1000000",
            "EDA_PAYMENT_DECLINE_ABOVE": "500",
            "EDA_PAYMENT_FAULT_FAIL_RATE": "0.05",
            "OTEL_TRACES_EXPORTER": "none",
        }
        commands = [([EDA, "api", "--host", "127.0.0.1", "--port", str(api_port)], base)]
        commands += [([EDA, *args], base | {"EDA_HEALTH_PORT": str(ports[r])}) for r, args in ROLES.items()]
        (tmp / "prometheus.yml").write_text(prometheus_config(ports))
        prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        commands.append(
            (
                [
                    prometheus,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                dict(os.environ),
            )
        )
        api, prom = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prom_port}"
        with processes(commands, tmp / "processes.log"):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                await wait_ok(session, f"{api}/readyz")
                await wait_ok(session, f"{prom}/-/ready")
                started = time.time()
                print(f"load for {seconds:.0f} s at up to {rate * 1.5:.0f} orders/s", flush=True)
                await load(session, api, seconds, rate)
                await asyncio.sleep(20)  # the sagas finish; two more gauge samples
                yield prom, started, time.time()


async def query(prom: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$__rate_interval", "20s").replace("$namespace", ".*")
    params = {"query": expr, "start": str(start), "end": str(end), "step": str(STEP_S)}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{prom}/api/v1/query_range", params=params) as r,
    ):
        body = await r.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    out = fmt
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def fmt(value: float, unit: str) -> str:
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024 or suffix == "GiB":
                return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
            value /= 1024
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    return (f"{value:.2f}" if abs(value) < 10 and value != int(value) else f"{value:,.0f}") + suffix


def chart(  # noqa: PLR0917 - the data and the box it is drawn in
    series: list[tuple[str, list[tuple[float, float]]]], unit: str, w: int, h: int, t0: float, t1: float
) -> str:
    """A time series panel body as SVG: y axis with 4 ticks, time axis, one polyline per series."""
    pad_l, pad_b, pad_t = 64, 18, 6
    values = [v for _, pts in series for _, v in pts] or [0.0]
    top = max(values) * 1.1 or 1.0

    def x(t: float) -> float:
        return pad_l + (w - pad_l - 8) * (t - t0) / max(1.0, t1 - t0)

    def y(v: float) -> float:
        return pad_t + (h - pad_t - pad_b) * (1 - v / top)

    parts = [f'<svg width="{w}" height="{h}">']
    for i in range(5):
        v = top * i / 4
        parts.append(f'<line x1="{pad_l}" x2="{w - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(
            f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{fmt(v, unit)}</text>'
        )
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        label = time.strftime("%H:%M:%S", time.localtime(t))
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        parts.append(f'<text x="{x(t):.1f}" y="{h - 3}" class="tick" text-anchor="{anchor}">{label}</text>')
    for n, (_, pts) in enumerate(series):
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{COLORS[n % len(COLORS)]}" stroke-width="1.5"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


async def panel_html(panel: dict[str, Any], prom: str, t0: float, t1: float) -> str:
    pos = panel["gridPos"]
    left, top, w, h = pos["x"] * CELL_W, pos["y"] * CELL_H, pos["w"] * CELL_W - 8, pos["h"] * CELL_H - 8
    style = f"left:{left}px;top:{top}px;width:{w}px;height:{h}px"
    title = html.escape(panel["title"])
    if panel["type"] == "row":
        return f'<div class="row" style="{style}">{title}</div>'
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    series: list[tuple[str, list[tuple[float, float]]]] = []
    for target in panel["targets"]:
        for result in await query(prom, target["expr"], t0, t1):
            name = legend(target.get("legendFormat", ""), result["metric"]) or json.dumps(result["metric"])
            pts = [(float(t), float(v)) for t, v in result["values"] if v not in ("NaN", "+Inf", "-Inf")]
            series.append((name, pts))
    series.sort(key=lambda s: s[0])
    if panel["type"] == "stat":
        last = series[0][1][-1][1] if series and series[0][1] else 0.0
        body = f'<div class="stat">{fmt(last, unit)}</div>'
    else:
        body = chart(series, unit, w - 12, h - 70, t0, t1)
        keys = "".join(
            f'<span><i style="background:{COLORS[n % len(COLORS)]}"></i>{html.escape(name)}</span>'
            for n, (name, _) in enumerate(series)
        )
        body += f'<div class="legend">{keys or "No data"}</div>'
    return f'<div class="panel" style="{style}"><div class="title">{title}</div>{body}</div>'


CSS = """
body { margin: 0; background: #111217; color: #ccccdc; font: 12px Inter, 'DejaVu Sans', sans-serif; }
header { padding: 10px 12px; font-size: 16px; color: #fff; }
header small { color: #8e8e9b; font-size: 12px; margin-left: 12px; }
.board { position: relative; margin: 0 8px; }
.panel { position: absolute; background: #181b1f; border: 1px solid #2c3235; border-radius: 2px;
  padding: 4px 6px; overflow: hidden; }
.row { position: absolute; font-size: 14px; color: #fff; padding-top: 6px; }
.title { font-weight: 500; color: #d8d9da; margin-bottom: 2px; }
.grid { stroke: #2c3235; } .tick { fill: #8e8e9b; font-size: 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 10px; font-size: 11px; margin-top: 2px; }
.legend i { display: inline-block; width: 12px; height: 3px; margin: 0 4px 3px 0; }
.stat { font-size: 64px; color: #73BF69; text-align: center; margin-top: 40px; }
"""


async def render(prom: str, t0: float, t1: float, out: Path) -> None:
    board = json.loads(BOARD.read_text())
    panels = [await panel_html(p, prom, t0, t1) for p in board["panels"]]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"]) * CELL_H
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(t1))
    page = (
        f"<html><head><style>{CSS}</style></head><body><header>{html.escape(board['title'])}"
        f"<small>real run {when}, Prometheus query_range, panels from eda.json</small></header>"
        f'<div class="board" style="height:{bottom}px">{"".join(panels)}</div></body></html>'
    )
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page_ = await browser.new_page(viewport={"width": 24 * CELL_W + 16, "height": 800})
        await page_.set_content(page)
        await page_.screenshot(path=str(out), full_page=True)
        await browser.close()
    print(f"wrote {out}")


async def main(seconds: float, rate: float, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="eda-dashboard-") as tmp:
        os.chmod(tmp, 0o711)  # reachable by the postgres system user when run as root
        async with running(seconds, rate, Path(tmp)) as (prom, t0, t1):
            await render(prom, t0 - 10, t1, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--rate", type=float, default=8.0, help="orders/s at mid-run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rate, args.out))
