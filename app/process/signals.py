"""The stop signals of a process (SIGINT, SIGTERM): who reacts to them while a block runs. Every entry
point that serves until told to stop (a background role, ``eda dev``, ``eda infra``, the projector)
installs its handler here, so each gives the default handling back when it is done."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], object]) -> Iterator[None]:
    """Call ``callback`` on SIGINT/SIGTERM (in the running event loop) while the block runs."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (serve until told to stop, then leave)."""
    stopping = asyncio.Event()
    with on_stop_signal(stopping.set):
        yield stopping
