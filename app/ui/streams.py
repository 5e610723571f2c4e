"""How many console live-feed (SSE) streams one API process serves at once, and their end at shutdown.

``StreamSlots`` is the cap (``EDA_UI_MAX_STREAMS``): ``open(source)`` returns ``None`` past it (the
route answers a 503 problem with ``Retry-After``), else a ``StreamingResponse`` whose slot is released
when the response ends, however it ends (client gone, error, shutdown) — counted in ``__call__``, not
in the generator, whose ``finally`` may run late when the client disconnects. Once shutdown begins the
stream ends cleanly (the browser reconnects, with ``Last-Event-ID``, to a pod that keeps running), so
uvicorn's graceful shutdown is not held for the feed's ``MAX_AGE_S``. Where the events come from is
``app.ui.live``'s concern.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.process.shutdown import Shutdown

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def until_shutdown(source: AsyncIterator[bytes], shutdown: Shutdown) -> AsyncIterator[bytes]:
    """``source``'s chunks until it ends or shutdown begins; ``source`` is closed either way (also
    when our consumer goes away mid-wait)."""
    stop = asyncio.ensure_future(shutdown.wait())
    chunk: asyncio.Future[bytes] | None = None
    try:
        while not shutdown.begun:
            chunk = asyncio.ensure_future(anext(source))
            await asyncio.wait((chunk, stop), return_when=asyncio.FIRST_COMPLETED)
            if not chunk.done():
                return
            try:
                data = chunk.result()
            except StopAsyncIteration:
                return
            chunk = None
            yield data
    finally:
        stop.cancel()
        if chunk is not None and not chunk.done():
            chunk.cancel()  # the source's own finally (unsubscribe) runs in it
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await chunk
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]


class _SlotResponse(StreamingResponse):
    def __init__(self, content: AsyncIterator[bytes], slots: StreamSlots) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.release()


class StreamSlots:
    """At most ``capacity`` concurrent streams in this process (0: the live feed is off)."""

    def __init__(
        self, capacity: int, shutdown: Shutdown, on_refused: Callable[[], None] = lambda: None
    ) -> None:
        self.capacity = capacity
        self.active = 0
        self._shutdown = shutdown
        self._on_refused = on_refused

    @property
    def available(self) -> bool:
        """Whether a new stream would be accepted now (a refusal is counted)."""
        if self.active < self.capacity and not self._shutdown.begun:
            return True
        self._on_refused()
        return False

    def open(self, source: AsyncIterator[bytes]) -> StreamingResponse | None:
        """The response streaming ``source`` in a slot; ``None`` when every slot is taken (``source``
        is then never started) or the process is shutting down."""
        if not self.available:
            return None
        self.active += 1
        return _SlotResponse(until_shutdown(source, self._shutdown), self)

    def release(self) -> None:
        self.active -= 1
