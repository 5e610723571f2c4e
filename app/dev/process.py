"""What every embedded server shares: the loopback host, free ports, spawning a server process in its
own process group with its output in a log file, stopping it (signal, wait, then SIGKILL) or several at
once, the tail of its log for error messages, health probes, waiting for a started server to answer, a
server's lifetime as a block, and serving until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

HOST = "127.0.0.1"
Popen = subprocess.Popen[bytes]
RunAs = tuple[int, int] | None


class DevstackError(RuntimeError):
    """An embedded server failed to start or stop; the message carries its log tail."""


PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"  # a server's log line when a chosen port was taken meanwhile


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def spawn(args: list[str], log_path: Path, cwd: Path | None = None, run_as: RunAs = None) -> Popen:
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


async def terminate(proc: Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Send ``sig``, wait up to ``timeout`` off the event loop, then SIGKILL. ``True``: it stopped by
    itself; ``False``: it had to be killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        return False
    return True


def stop_all(procs: Sequence[Popen], timeout: float = 30.0) -> list[int]:
    """SIGTERM to every process at once, then wait for each up to ``timeout`` s and SIGKILL the ones still
    running; their exit codes (blocking: a test's or a script's teardown)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """``GET url`` answers 200 (a server's health endpoint)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def alive(proc: Popen | None) -> int | None:
    """The pid of ``proc`` while it runs (``None``: never started, or exited)."""
    return proc.pid if proc is not None and proc.poll() is None else None


async def answers(
    proc: Popen | None, probe: Callable[[], Awaitable[bool]], timeout: float, interval: float
) -> bool:
    """Whether a just-started server answers ``probe`` within ``timeout`` s (asked every ``interval`` s);
    ``False`` at once when its process exits (or was never started)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and alive(proc) is not None:
        if await probe():
            return True
        await asyncio.sleep(interval)
    return False


class Server(Protocol):
    """An embedded server: started, then stopped."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def started[S: Server](server: S) -> AsyncIterator[S]:
    """``server`` started for the block, stopped after it (also when the block fails)."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
