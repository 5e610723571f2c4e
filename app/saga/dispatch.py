"""The saga's outbox port: what a reaction sends after it recorded its decision — a worker command, and
the saga's one timer (armed, re-armed, disarmed) — with its JetStream adapter and its in-memory twin.

Promises (``tests/contract`` holds both to them): a command is queued once per command id (repeats
are dropped: JetStream's ``Nats-Msg-Id`` dedupe, the twin for ever); a saga has at most one timer,
and arming it again replaces it (arming with the same cause again changes nothing); disarming drops it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from nats.js.client import JetStreamContext

from app.eventstore.envelope import Metadata
from app.saga import timeouts
from app.workers.commands import WorkerCommand, WorkerName, publish_command


class Dispatch(Protocol):
    async def send(self, worker: WorkerName, cmd: WorkerCommand, meta: Metadata) -> None: ...

    async def arm(self, order_id: int, at: datetime, cause: str, meta: Metadata) -> None: ...

    async def disarm(self, order_id: int) -> None: ...


class JetStreamDispatch:
    """Commands on ``COMMANDS``, timers as message schedules on ``SAGA_TIMERS`` (``app.saga.timeouts``)."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def send(self, worker: WorkerName, cmd: WorkerCommand, meta: Metadata) -> None:
        await publish_command(self._js, worker, cmd, meta)

    async def arm(self, order_id: int, at: datetime, cause: str, meta: Metadata) -> None:
        await timeouts.arm(self._js, order_id, at, cause, meta)

    async def disarm(self, order_id: int) -> None:
        await timeouts.disarm(self._js, order_id)


class InMemoryDispatch:
    """The twin: ``queued`` holds the commands in order, ``timers`` each saga's deadline."""

    def __init__(self) -> None:
        self.queued: list[tuple[WorkerName, WorkerCommand]] = []
        self.timers: dict[int, datetime] = {}
        self._ids: set[str] = set()

    async def send(self, worker: WorkerName, cmd: WorkerCommand, meta: Metadata) -> None:
        if cmd.command_id not in self._ids:
            self._ids.add(cmd.command_id)
            self.queued.append((worker, cmd))

    async def arm(self, order_id: int, at: datetime, cause: str, meta: Metadata) -> None:
        key = f"timer:{order_id}:{cause}"
        if key not in self._ids:
            self._ids.add(key)
            self.timers[order_id] = at

    async def disarm(self, order_id: int) -> None:
        self.timers.pop(order_id, None)

    def take(self) -> list[tuple[WorkerName, WorkerCommand]]:
        """The queued commands, handed over (the queue is emptied: a work queue's ack)."""
        out, self.queued = self.queued, []
        return out
