"""Saga comparison (not a test): the product, its floor and the DBOS peer back to back at the same offered
rates, one table side by side with ratios, and a verdict per target of issue 16 computed from this run.

At each rate of ``--rates``, in order, it runs — each on a fresh data dir, each for ``--seconds`` after
``--warmup`` — the product (``saga_load.run``: every role a separate process; ``--auth``: OIDC bearer
tokens by default, as in production), the floor (``saga_floor.run``: the message pattern of issue 16's
design, 7 stored messages per seed order, with bare handlers — ``--floor-design old``: the 13 of the
design before it; seed orders only, so left out when ``--items`` > 0) and the DBOS peer
(``peers/dbos_saga.py`` in a subprocess, in-process by default, ``--http`` through its FastAPI process;
its other options pass through; neither the floor nor the peer authenticates). The three run together at
each rate so that each rate's trio shares one hour of this host, whose speed swings; its fsync latency
is measured first (200 appends of 4 KiB, each fsync'd, in the temp dir that holds the data dirs) and
recorded, with the load average, so runs of different hours can be judged.

Verdicts. A system *sustains* an offered rate when, in that run, it completed at least 95 % of it per
second over the window with p99 ≤ 500 ms, no order left uncompleted and no error; its *capacity* is the
highest rate it sustained, its throughput the completed/s of that run. Targets (issue 16): seed orders
≥ 250/s (capacity), ≥ 5x the DBOS peer's and ≥ 0.9x the floor's throughput, CPU per saga ≤ 8 ms at
100/s; one item per order (``--items 1``) ≥ 150/s. A target this run cannot judge (another ``--items``,
100 not among the rates, a system that sustained no rate) says so; a ratio where a system kept up with
every rate offered is marked as a bound.

Run: ``.venv/bin/python benchmarks/saga_compare.py [--rates 100,150,200,250] [--seconds 20] [--warmup 3]
[--items 0] [--auth oidc] [--floor-design new|old] [--http] [--sync] [--always-reserve] [--pool-size 20]
[--threads 20]`` (the last five go to the DBOS peer, which needs ``.venv/bin/pip install -e '.[bench]'``);
prints the floor's design and stored messages, progress, the table (its floor column named with the
design) and the verdicts, and writes ``benchmarks/results/saga_compare.json`` (the floor's design in its
options and in each floor run). About 40 s per system and rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from harness import pct
from peers.dbos_saga import peer_args, require_dbos, result_file
from saga_floor import describe, design_arg
from saga_floor import run as run_floor
from saga_load import auth_arg
from saga_load import run as run_product

RESULTS = Path(__file__).parent / "results"
PEER = Path(__file__).parent / "peers" / "dbos_saga.py"
SYSTEMS = ("product", "floor", "dbos")
P99_BOUND_MS = 500.0
KEEP_UP = 0.95  # completed/s ≥ this share of the offered rate counts as keeping up (window edges)
Run = dict[str, float]


def fsync_ms(directory: str, count: int = 200) -> dict[str, float]:
    """Time ``count`` appends of 4 KiB to a new file in ``directory``, each followed by fsync."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="eda-fsync-") as tmp:
        fd = os.open(Path(tmp, "probe"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        times = []
        try:
            for _ in range(count):
                os.write(fd, b"x" * 4096)
                start = time.perf_counter()
                os.fsync(fd)
                times.append((time.perf_counter() - start) * 1000)
        finally:
            os.close(fd)
    return {"p50": pct(times, 0.5), "p99": pct(times, 0.99), "mean": sum(times) / count}


def run_dbos(rate: float, args: argparse.Namespace) -> Run:
    """The peer in its own process (DBOS is a per-process singleton; its CPU is then its own)."""
    command = [sys.executable, str(PEER), "--rate", str(rate), "--seconds", str(args.seconds)]
    command += ["--warmup", str(args.warmup), "--items", str(args.items)]
    command += ["--pool-size", str(args.pool_size), "--threads", str(args.threads)]
    flags = {"--http": args.http, "--sync": args.sync, "--always-reserve": args.always_reserve}
    command += [flag for flag, on in flags.items() if on]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result: Run = json.loads((RESULTS / result_file(args.items, args.http)).read_text())
    return result


def measure(rate: float, args: argparse.Namespace) -> dict[str, Run | None]:
    runs: dict[str, Run | None] = {}
    for system in SYSTEMS:
        print(f"  {rate:g}/s {system} ...", end="", flush=True)
        if system == "product":
            product = run_product(rate, args.seconds, args.warmup, args.items, False, args.auth)
            runs[system] = uvloop.run(product)
        elif system == "floor":
            floor = None if args.items else run_floor(rate, args.seconds, args.warmup, args.floor_design)
            runs[system] = None if floor is None else uvloop.run(floor)
        else:
            runs[system] = run_dbos(rate, args)
        got = runs[system]
        print(" left out (seed orders only)" if got is None else f" {got['completed_per_s']:.1f}/s")
    return runs


def sustains(run: Run | None) -> bool:
    return (
        run is not None
        and run["completed_per_s"] >= KEEP_UP * run["rate"]
        and run["p99_ms"] <= P99_BOUND_MS
        and run["never_completed"] == 0
        and run["errors"] == 0
    )


def capacity(table: list[dict[str, Any]], system: str) -> Run | None:
    """The run at the highest rate ``system`` sustained (None: it sustained none)."""
    kept = [row[system] for row in table if sustains(row[system])]
    return max(kept, key=lambda run: run["rate"], default=None)


def _ratio(table: list[dict[str, Any]], target: float, other: str) -> tuple[str, str]:
    top = max(row["rate"] for row in table)
    mine, theirs = capacity(table, "product"), capacity(table, other)
    if mine is None or theirs is None:
        who = "the product" if mine is None else other
        return "n/a", f"{who} sustained none of the rates: offer lower ones"
    ratio = mine["completed_per_s"] / theirs["completed_per_s"]
    notes = {
        (True, True): "; both kept up with every rate offered: offer higher ones",
        (False, True): f"; {other} kept up with every rate, so the ratio is at most this: offer higher ones",
        (True, False): "; the product kept up with every rate, so the ratio is at least this",
    }
    note = notes.get((mine["rate"] == top, theirs["rate"] == top), "")
    figures = f"product {mine['completed_per_s']:.1f}/s, {other} {theirs['completed_per_s']:.1f}/s"
    return ("PASS" if ratio >= target else "FAIL"), f"{figures}: {ratio:.2f}x{note}"


def _absolute(table: list[dict[str, Any]], target: float) -> tuple[str, str]:
    best = capacity(table, "product")
    if best is None:
        return "FAIL", "the product sustained none of the rates offered"
    detail = f"sustained {best['rate']:g}/s ({best['completed_per_s']:.1f}/s, p99 {best['p99_ms']:.0f} ms)"
    return ("PASS" if best["rate"] >= target else "FAIL"), detail


def _cpu(table: list[dict[str, Any]], rate: float, target: float) -> tuple[str, str]:
    row = next((row for row in table if row["rate"] == rate), None)
    if row is None:
        return "n/a", f"{rate:g}/s is not among --rates"
    used = row["product"]["cpu_ms_per_saga"]
    return ("PASS" if used <= target else "FAIL"), f"{used:.1f} ms of machine CPU per saga at {rate:g}/s"


def verdicts(table: list[dict[str, Any]], items: int, floor_design: str = "new") -> list[dict[str, str]]:
    """Issue 16's targets, each PASS/FAIL from ``table`` or n/a with why."""
    floor = f"seed orders >= 0.9x the floor ({floor_design} design) at p99 <= 500 ms"
    seed = [
        ("seed orders >= 250/s with p99 <= 500 ms", lambda: _absolute(table, 250)),
        ("seed orders >= 5x the DBOS peer at p99 <= 500 ms", lambda: _ratio(table, 5, "dbos")),
        (floor, lambda: _ratio(table, 0.9, "floor")),
        ("machine CPU per seed saga <= 8 ms at 100/s", lambda: _cpu(table, 100, 8)),
    ]
    one_item = [("one item per order >= 150/s with p99 <= 500 ms", lambda: _absolute(table, 150))]
    out = []
    for wanted, why, checks in ((0, "needs seed orders (--items 0)", seed), (1, "needs --items 1", one_item)):
        for target, judge in checks:
            verdict, detail = judge() if items == wanted else ("n/a", why)
            out.append({"target": target, "verdict": verdict, "detail": detail})
    return out


CELLS = (("completed_per_s", ".1f"), ("p50_ms", ".0f"), ("p99_ms", ".0f"), ("cpu_ms_per_saga", ".1f"))
DASH = f"{'—':>7}"


def _cells(run: Run | None) -> str:
    return DASH * len(CELLS) if run is None else "".join(f"{run[k]:>7{f}}" for k, f in CELLS)


def _ratios(product: Run, other: Run | None) -> str:
    keys = ("completed_per_s", "cpu_ms_per_saga")
    return "".join(DASH if other is None or not other[k] else f"{product[k] / other[k]:>7.2f}" for k in keys)


def print_table(table: list[dict[str, Any]], floor_design: str = "new") -> None:
    names = {"floor": f"floor ({floor_design} design)"}
    groups = "".join(f" {' ' + names.get(name, name) + ' ':-^27}" for name in SYSTEMS)
    ratios = "".join(f" {' product/' + name + ' ':-^13}" for name in ("floor", "dbos"))
    print(f"\n{'':>6}{groups}{ratios}")
    metrics = "".join(f"{name:>7}" for name in ("done/s", "p50", "p99", "cpu"))
    print(f"{'rate':>6}{metrics * 3}{f'{"done/s":>7}{"cpu":>7}' * 2}")
    for row in table:
        cells = "".join(_cells(row[s]) for s in SYSTEMS)
        ratio = _ratios(row["product"], row["floor"]) + _ratios(row["product"], row["dbos"])
        print(f"{row['rate']:>6g}{cells}{ratio}")
    print("done/s = sagas completed per second; p50/p99 = ms from start to completion durable; cpu = machine")
    print("CPU ms per completed saga; ratios = the product's figure / the other's (— = not run).")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,150,200,250", help="offered orders/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--items", type=int, default=0, help="product lines per order (0 = seed order)")
    auth_arg(parser)
    design_arg(parser, "--floor-design")
    peer_args(parser)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    require_dbos()  # before minutes of product runs
    host = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": os.getloadavg(),
        "fsync_4k_ms": fsync_ms(tempfile.gettempdir()),
    }
    fs = host["fsync_4k_ms"]
    print(f"host: {host['cpus']} CPUs, load average {host['load_average'][0]:.1f} at {host['at']}")
    print(f"fsync of a 4 KiB append in {tempfile.gettempdir()} (where the data dirs go): ", end="")
    print(f"p50 {fs['p50']:.2f} ms, p99 {fs['p99']:.2f} ms, mean {fs['mean']:.2f} ms")
    print(describe(args.floor_design))
    table = [{"rate": rate} | measure(rate, args) for rate in rates]
    print_table(table, args.floor_design)
    judged = verdicts(table, args.items, args.floor_design)
    print("\nissue 16 targets (from the numbers above):")
    for v in judged:
        print(f"  [{v['verdict']:>4}] {v['target']}: {v['detail']}")
    RESULTS.mkdir(exist_ok=True)
    options = {k: v for k, v in vars(args).items() if k != "rates"} | {"rates": rates}
    out = {"host": host, "options": options, "runs": table, "verdicts": judged}
    (RESULTS / "saga_compare.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
