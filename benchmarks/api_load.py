"""HTTP load benchmark (not a test): order creates/s with 64 concurrent clients, latency, and the
write → read-model visibility lag.

Setup: embedded nats-server (``sync_interval: always``) + PostgreSQL (fsync on) in a temp dir, then
``eda api`` and ``eda projector`` as SEPARATE processes; this process is only the load generator
(aiohttp on uvloop, keep-alive connections, ``--clients`` concurrent loops POSTing ``/api/v1/orders``).

Visibility lag: a ``LISTEN eda_orders`` connection receives the projector's NOTIFY, which is sent in
the very transaction that makes the order visible, so its arrival time is the moment the order became
readable. Lag of an order = NOTIFY arrival minus the moment its ``201`` arrived at the client (0 when the
order was already visible before the client got its acknowledgement). Both clocks are this process's
``time.perf_counter``. Also reported: ``append→visible`` measured from the request start (upper bound).

``--api-replicas N`` starts N ``eda api`` processes and spreads the clients over them, as a Service
spreads connections over pods (on 2 cores one replica does best: the second only adds contention).

Authentication (``--auth``): ``oidc`` (the default, as in production) runs the dev OIDC provider
(``app.dev.idp``) beside the servers and every client sends a trusted backend's bearer token (verified
once, then from the verified-token cache; JWKS cached); ``disabled`` runs with ``EDA_AUTH_MODE=disabled``;
``compare`` runs both, one after the other on fresh servers, and prints oidc/disabled. Products cost
``EDA_DEFAULT_PRICE=99.99`` (the orders are 2 x product 1 = 199.98, priced by the server).

Run: ``.venv/bin/python benchmarks/api_load.py [--clients 64] [--seconds 20] [--auth compare]``; prints
a table and writes ``benchmarks/results/api_load.json``. Note: on a 2-core machine the servers, both
roles and the generator share the CPUs; other work on the machine skews the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import uvloop
from harness import NO_SAGA, pct, running_system, wait_ready, watch_versions

from app.dev.idp import DevIdentityProvider
from app.dev.issuer import AUDIENCE

TARGETS = {"creates_per_s": 800, "p99_ms": 100, "lag_p50_ms": 10, "lag_p99_ms": 50}
PRICED = {"EDA_DEFAULT_PRICE": "99.99"} | NO_SAGA  # API and projector only: no saga runs


@contextlib.asynccontextmanager
async def auth_env(mode: str) -> AsyncIterator[tuple[dict[str, str], dict[str, str]]]:
    """The API's auth settings and the clients' headers for ``mode`` (oidc: a provider runs)."""
    if mode == "disabled":
        yield {"EDA_AUTH_MODE": "disabled"}, {}
        return
    with tempfile.TemporaryDirectory(prefix="eda-bench-idp-") as tmp:
        idp = DevIdentityProvider(Path(tmp))
        await idp.start()
        try:
            token = await asyncio.to_thread(idp.client().mint, "checkout-backend", "orders:write:any")
            env = {"EDA_AUTH_ISSUER": idp.issuer, "EDA_AUTH_AUDIENCE": AUDIENCE}
            yield env, {"Authorization": f"Bearer {token}"}
        finally:
            await idp.stop()


async def run(clients: int, seconds: float, warmup: float, api_replicas: int, auth: str) -> dict[str, float]:
    async with (
        auth_env(auth) as (env, headers),
        running_system([["projector"]], PRICED | env, api_replicas=api_replicas) as system,
    ):
        result = await drive(system.base_urls, system.dsn, clients, seconds, warmup, headers)
        return {"auth": auth, "api_replicas": api_replicas, **result}  # type: ignore[dict-item]


async def drive(
    bases: tuple[str, ...],
    dsn: str,
    clients: int,
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    listener, visible = await watch_versions(dsn, 1)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timing: list[tuple[int, float, float]] = []  # (order_id, request start, ack)
    errors = 0
    async with aiohttp.ClientSession(connector=connector, headers=headers or {}) as session:
        for base in bases:
            await wait_ready(session, f"{base}/readyz")
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup
        stop_at = measure_from + seconds

        async def client(n: int) -> None:
            nonlocal errors
            body = {"user_id": n + 1, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}
            base = bases[n % len(bases)]  # each client sticks to one replica, like a keep-alive connection
            while loop.time() < stop_at:
                started = time.perf_counter()
                async with session.post(f"{base}/api/v1/orders", json=body) as resp:
                    payload = await resp.read()
                acked = time.perf_counter()
                if resp.status != 201:
                    errors += 1
                    continue
                if loop.time() >= measure_from:
                    timing.append((json.loads(payload)["order_id"], started, acked))

        await asyncio.gather(*(client(n) for n in range(clients)))
    await asyncio.sleep(1.0)  # let the last notifications arrive
    await listener.close()
    latencies = [(ack - start) * 1000 for _, start, ack in timing]
    lags = [max(0.0, visible[oid] - ack) * 1000 for oid, _, ack in timing if oid in visible]
    from_start = [(visible[oid] - start) * 1000 for oid, start, _ in timing if oid in visible]
    return {
        "clients": clients,
        "seconds": seconds,
        "creates": len(timing),
        "errors": errors,
        "creates_per_s": len(timing) / seconds,
        "p50_ms": pct(latencies, 0.50),
        "p99_ms": pct(latencies, 0.99),
        "lag_p50_ms": pct(lags, 0.50),
        "lag_p99_ms": pct(lags, 0.99),
        "visible_before_ack": sum(1 for oid, _, ack in timing if visible.get(oid, 1e18) <= ack)
        / max(1, len(timing)),
        "start_to_visible_p50_ms": pct(from_start, 0.50),
        "start_to_visible_p99_ms": pct(from_start, 0.99),
        "never_visible": sum(1 for oid, _, _ in timing if oid not in visible),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--api-replicas", type=int, default=1, help="`eda api` processes (clients spread)")
    parser.add_argument(
        "--auth",
        choices=["oidc", "disabled", "compare"],
        default="oidc",
        help="bearer tokens of the dev OIDC provider, no authentication, or both one after the other",
    )
    args = parser.parse_args()
    modes = ["disabled", "oidc"] if args.auth == "compare" else [args.auth]
    results = [uvloop.run(run(args.clients, args.seconds, args.warmup, args.api_replicas, m)) for m in modes]
    result = results[-1]
    if len(results) == 2:
        result = {f"{r['auth']}_{k}": v for r in results for k, v in r.items() if k != "auth"}
        result["oidc_vs_disabled_creates"] = result["oidc_creates_per_s"] / result["disabled_creates_per_s"]
    width = max(len(k) for k in result)
    for key, value in result.items():
        target = TARGETS.get(key.removeprefix("oidc_").removeprefix("disabled_"))
        more = key.endswith("creates_per_s")
        note = f"  (target {'≥' if more else '≤'} {target})" if target else ""
        print(
            f"{key:<{width}}  {value:10.2f}{note}" if isinstance(value, float) else f"{key:<{width}}  {value}"
        )
    out = Path(__file__).parent / "results" / "api_load.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
