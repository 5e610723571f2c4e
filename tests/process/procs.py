"""Child processes for the process-level tests: start one with its output in a log file (stopped with
SIGTERM, then SIGKILL), wait for a condition while failing fast when a process dies, and run a process
in a private mount namespace where a directory of ours appears at the kubelet's service-account path
(the machine's own path is never touched).

kopf reads the in-cluster credentials from the fixed ``/var/run/secrets/kubernetes.io/serviceaccount``.
``unshare --mount`` gives the child its own mount table; a bind mount there is invisible to every other
process and disappears with the child. As root that needs nothing else; otherwise a user namespace
(``--map-root-user``) where the kernel allows it; else the tests that need it skip, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from app.dev.process import log_tail as tail
from app.dev.process import stop_all as stop_procs
from tests.support.eventually import eventually

EDA = str(Path(sys.executable).parent / "eda")
SERVICE_ACCOUNT_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount")
Popen = subprocess.Popen[bytes]


@contextlib.contextmanager
def running(argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> Iterator[Popen]:
    """``argv`` as a child process, its output appended to ``log``; SIGTERM (then SIGKILL) at the end."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: Popen, timeout: float = 10.0) -> int:
    """SIGTERM, wait, SIGKILL; returns the exit code."""
    return stop_procs([proc], timeout)[0]


async def stop_all(procs: dict[str, Popen], timeout: float = 30.0) -> dict[str, int]:
    """One SIGTERM to each at once (as Kubernetes stops pods), then wait; exit codes by name."""
    codes = await asyncio.to_thread(stop_procs, list(procs.values()), timeout)
    return dict(zip(procs, codes, strict=True))


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    timeout: float = 60.0,
    procs: Sequence[Popen] = (),
    log: Path | None = None,
) -> None:
    """``eventually`` ``predicate``; fail at once when one of ``procs`` exits, or after ``timeout``, with
    the tail of ``log``."""
    where = (lambda: f"\n--- {log} ---\n{tail(log)}") if log else (lambda: "")

    async def probe() -> bool:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        for proc in procs:
            if proc.poll() is not None:
                raise _Exited(f"{proc.args!r} exited with {proc.returncode} waiting for {what}{where()}")
        return False

    try:
        await eventually(probe, timeout=timeout, interval=0.2, what=what)
    except _Exited:
        raise
    except AssertionError as exc:
        raise AssertionError(f"{exc}{where()}") from None


class _Exited(AssertionError):
    """A process ``until`` watches ended while it waited."""


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def http_status(url: str) -> int:
    """The HTTP status of GET ``url`` (0 when nothing answers)."""
    return await asyncio.to_thread(_get, url)


def _unshare_prefix(map_root: bool) -> list[str]:
    return [
        "unshare",
        *(["--map-root-user"] if map_root else []),
        "--mount",
        "--propagation",
        "private",
        "--",
    ]


@functools.cache
def mount_namespace_prefix() -> list[str] | None:
    """How to start a child in a private mount namespace here, or None when the kernel refuses."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for map_root in (False, True):
        prefix = _unshare_prefix(map_root)
        probe = [*prefix, "mount", "--bind", "/tmp", "/tmp"]
        if subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode == 0:
            return prefix
    return None


def _mount_target() -> Path:
    """The deepest existing directory on the way to the service-account path (``/run`` on a machine that is
    not a pod): a bind mount over it lets our directory appear at the full path."""
    target = SERVICE_ACCOUNT_PATH
    while not target.exists():
        target = target.parent
    return target


def with_service_account(argv: Sequence[str], scratch: Path, account: Path | None) -> list[str]:
    """``argv`` in a private mount namespace where ``account`` (a token, ca.crt and namespace; None: no
    service account at all, hiding a real one) is at ``/var/run/secrets/kubernetes.io/serviceaccount``."""
    prefix = mount_namespace_prefix()
    if prefix is None:
        raise RuntimeError("no private mount namespace here (unshare --mount refused)")
    target = _mount_target()
    relative = SERVICE_ACCOUNT_PATH.relative_to(target) if target != SERVICE_ACCOUNT_PATH else Path()
    source = scratch / "mounted"
    (source / relative).mkdir(parents=True, exist_ok=True)
    if account is not None:
        for item in account.iterdir():
            shutil.copy(item, source / relative / item.name)
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    return [*prefix, "sh", "-c", script, "sh", str(source), str(target), *argv]


def isolated_from_a_real_service_account(argv: Sequence[str], scratch: Path) -> list[str]:
    """``argv`` unchanged, unless this machine is a pod: then with its service account hidden."""
    if not SERVICE_ACCOUNT_PATH.exists():
        return list(argv)
    return with_service_account(argv, scratch, None)


async def exit_code(proc: Popen, timeout: float = 60.0) -> int:
    """Wait (off the event loop) for ``proc`` to exit; its exit code."""
    return await asyncio.to_thread(proc.wait, timeout)
