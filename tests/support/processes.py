"""Subprocesses of tests (``eda`` roles, servers): stopping them for good."""

from __future__ import annotations

import asyncio
import signal
import subprocess


async def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> bool:
    """Send ``sig`` and wait off the event loop; SIGKILL after ``timeout``. ``True``: it stopped by
    itself, ``False``: it had to be killed."""
    proc.send_signal(sig)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        return False
    return True
