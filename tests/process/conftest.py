"""Fixtures of the process-level tests: ``eda infra --cluster 3 --bare`` run once per session as a process
(a 3-node JetStream cluster and a PostgreSQL of its own, as a developer starts them, with nothing
provisioned or migrated: that is the chart's Jobs' work) — the chart's Jobs and roles run against it
(the chart's defaults want 3 stream replicas), and its own test checks what it printed and that SIGINT
stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from process.procs import EDA, stop, tail


@dataclass
class Infra:
    """A running ``eda infra --cluster 3 --bare``: what it printed, its process and data dir."""

    printed: dict[str, str]
    lines: list[str]
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path

    @property
    def nats_urls(self) -> list[str]:
        return self.printed["EDA_NATS_URL"].split(",")

    @property
    def database_url(self) -> str:
        return self.printed["EDA_DATABASE_URL"]


async def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    out = proc.stdout

    def read() -> list[str]:
        return [out.readline().decode().rstrip("\n") for _ in range(count)]

    return await asyncio.wait_for(asyncio.to_thread(read), timeout)


def _start(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [EDA, "infra", "--cluster", "3", "--bare", "--data-dir", str(data_dir)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=err,
        )


@pytest.fixture(scope="session")
async def infra_cluster() -> AsyncIterator[Infra]:
    """``eda infra --cluster 3 --bare`` (stdout parsed, stderr to a log); stopped with SIGINT, exit code 0."""
    data_dir = Path(tempfile.mkdtemp(prefix="eda-infra-"))
    os.chmod(data_dir, 0o711)  # as root, PostgreSQL's user keeps its data here (see app.dev.stack)
    log = data_dir / "infra.stderr"
    proc = _start(data_dir, log)
    try:
        lines = await _read_lines(proc, 3, 90)
        printed = dict(line.split("=", 1) for line in lines if "=" in line)
        yield Infra(printed, lines, proc, data_dir, log)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 60)
        assert code == 0, f"eda infra --cluster 3 --bare exited with {code} on SIGINT:\n{tail(log)}"
    finally:
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        await asyncio.to_thread(shutil.rmtree, data_dir, True)
