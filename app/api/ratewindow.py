"""Sliding-window counters for the API's per-client rate limit, in process memory (``app.api.loadlimits``).

The algorithm is the ``limits`` library's sliding-window counter — a fixed window's count plus the
previous window's count weighted by how much of it still overlaps the sliding window — with O(1) memory
per client and key. It is written here rather than taken from ``limits``' storages because both cost
the API far more than the count itself: the synchronous ``MemoryStorage`` starts a ``threading.Timer``
thread whenever its previous 10 ms expiry timer has ended (at 120 orders/s, ~37 new threads a second and
9 % of the API's CPU), and the asyncio one scans every client, each through ``asyncio.to_thread``, after
every hit. Here expiry is a sweep of the counters whose windows have passed, at most once per window,
inline. ``limits`` still parses the configured limits (``RateLimitItem``: amount and window).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem


@dataclass(slots=True)
class _Window:
    index: int  # which fixed window ``count`` belongs to (time // length)
    count: int
    previous: int  # the count of window ``index - 1``


class SlidingWindows:
    """Hits per (limit, client) in sliding windows; not thread-safe (one event loop uses it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[int, int, str], _Window] = {}
        self._swept_at = clock()
        self._longest = 1

    def hit(self, item: RateLimitItem, key: str) -> bool:
        """Count one request of ``key`` against ``item``; ``False`` (and nothing counted) when that
        would exceed it."""
        now = self._clock()
        length = item.get_expiry()
        self._longest = max(self._longest, length)
        if now - self._swept_at >= self._longest:
            self._sweep(now)
        window = self._current(item, key, now, length)
        if math.floor(self._weighted(window, now, length)) + 1 > item.amount:
            return False
        window.count += 1
        return True

    def retry_after(self, item: RateLimitItem, key: str) -> int:
        """Whole seconds (≥ 1) until a hit of ``key`` against ``item`` would be counted again (a hit
        is refused while the weighted count is at or above the amount)."""
        now = self._clock()
        length = item.get_expiry()
        window = self._current(item, key, now, length)
        over = self._weighted(window, now, length) - item.amount
        if over < 0:
            return 1
        left = (window.index + 1) * length - now  # of the current window
        # The previous window's weight falls linearly until the current window ends...
        if window.previous and over * length / window.previous < left:
            return math.floor(over * length / window.previous) + 1
        # ...after which the current count is the one that fades, over the next window.
        fade = length * max(0.0, 1 - item.amount / window.count) if window.count else 0.0
        return math.floor(left + fade) + 1

    def _current(self, item: RateLimitItem, key: str, now: float, length: int) -> _Window:
        index = int(now // length)
        slot = (item.amount, length, key)
        window = self._windows.get(slot)
        if window is None:
            window = self._windows[slot] = _Window(index, 0, 0)
        elif window.index != index:
            window.previous = window.count if window.index == index - 1 else 0
            window.index, window.count = index, 0
        return window

    @staticmethod
    def _weighted(window: _Window, now: float, length: int) -> float:
        overlap = 1.0 - (now - window.index * length) / length  # of the previous window, in (0, 1]
        return window.previous * overlap + window.count

    def _sweep(self, now: float) -> None:
        """Forget the counters of clients whose last two windows have passed (they count 0 now)."""
        self._swept_at = now
        stale = [slot for slot, w in self._windows.items() if w.index < int(now // slot[1]) - 1]
        for slot in stale:
            del self._windows[slot]

    def __len__(self) -> int:
        return len(self._windows)
