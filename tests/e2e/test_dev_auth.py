"""``eda dev`` as a user runs it (``make run``): the banner announces the anonymous dev principal and
prints ready tokens, the seed's tokenless curl flow works from this machine, ``eda token`` mints from
the running dev issuer, a customer's token sees only its orders; ``eda api`` refuses to start without
an issuer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.dev.process import free_port
from e2e.conftest import EDA
from tests.support.eventually import eventually


async def _banner(proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> str:
    async def printed() -> str | None:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        assert proc.poll() is None, text[-3000:]
        return text if "Ctrl-C stops" in text else None

    return await eventually(printed, timeout=timeout, interval=0.2, what="eda dev's banner")


async def test_make_run_seed_flow_tokenless_and_with_tokens(short_tmp: Path) -> None:
    port, log = free_port(), short_tmp / "dev.log"
    data = short_tmp / "data"
    with log.open("ab") as out:
        args = [EDA, "dev", "--data-dir", str(data), "--port", str(port)]
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    try:
        banner = await _banner(proc, log)
        assert "ANONYMOUS DEV PRINCIPAL" in banner
        assert "export TOKEN=eyJ" in banner
        assert "export OPERATOR_TOKEN=eyJ" in banner
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            for _ in range(300):  # the banner is printed just before uvicorn binds
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            seed = await c.post("/api/v1/orders", json={"user_id": 123, "amount": 99.99})  # the README's
            assert seed.status_code == 201, seed.text
            assert (await c.get(f"/api/v1/orders/{seed.json()['order_id']}")).json()["user_id"] == 123
            items = {"user_id": 123, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}
            assert (await c.post("/api/v1/orders", json=items)).status_code == 201  # 2 x 99.99 in dev
            minted = await asyncio.to_thread(
                subprocess.run,
                [
                    EDA,
                    "token",
                    "--data-dir",
                    str(data),
                    "--sub",
                    "456",
                    "--scope",
                    "orders:write orders:read",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            auth = {"Authorization": f"Bearer {minted.stdout.strip()}"}
            mine = await c.post("/api/v1/orders", json={"items": items["items"]}, headers=auth)
            assert mine.status_code == 201, mine.text
            listed = (await c.get("/api/v1/orders", headers=auth)).json()["items"]
            assert [o["order_id"] for o in listed] in ([], [mine.json()["order_id"]])  # projector may lag
            assert (await c.get(f"/api/v1/orders/{seed.json()['order_id']}", headers=auth)).status_code == 404
            bad = await c.get("/api/v1/orders", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401  # a presented token is verified, even in dev
        ports = json.loads((data / "ports.json").read_text())
        assert set(ports) == {"nats", "postgres", "idp"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    assert "Traceback" not in await asyncio.to_thread(log.read_text, errors="replace")


def test_eda_api_refuses_to_start_without_an_issuer() -> None:
    env = {"PATH": str(Path(sys.executable).parent), "EDA_AUTH_MODE": "oidc"}
    done = subprocess.run([EDA, "api"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "EDA_AUTH_ISSUER is not set" in lines[0]
