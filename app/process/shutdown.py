"""A process's shutdown state: ``Shutdown.begin()`` once SIGTERM/SIGINT arrives; whoever serves traffic
reads it — ``/readyz`` fails from that moment, responses say ``Connection: close``, long-lived streams
end so the server is not held open by them. Created by the composition root, passed down; nothing here
is global.
"""

from __future__ import annotations

import asyncio


class Shutdown:
    """Set once; ``begun`` and ``wait()`` for the readers, ``begin()`` for the process owner."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def begun(self) -> bool:
        return self._event.is_set()

    def begin(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
