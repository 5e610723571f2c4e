"""The saga's roles as separate processes (``eda saga``, ``eda worker ...``) for crash tests: start,
SIGKILL, stop; a chaos loop that kills every role in turn at random moments; and the saga invariants
awaited until they hold (bounded)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.eventstore.envelope import RecordedEvent
from app.eventstore.ports import EventStore
from tests.support.invariants import all_events, check

EDA = str(Path(sys.executable).parent / "eda")
ROLES = {
    "saga": ["saga"],
    "inventory": ["worker", "inventory"],
    "payment": ["worker", "payment"],
    "shipping": ["worker", "shipping"],
}


def saga_env(nats_url: str, default_stock: int, **extra: str) -> dict[str, str]:
    """The roles' environment for crash tests: short step timeouts, some declined payments, some
    failed shipments, a few injected payment faults."""
    return dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        "EDA_DEFAULT_STOCK": str(default_stock),
        "EDA_SAGA_STEP_TIMEOUT_S": "15",
        "EDA_PAYMENT_DECLINE_ABOVE": "900",
        "EDA_PAYMENT_FAULT_FAIL_RATE": "0.05",
        "EDA_SHIPPING_FAIL_USER_IDS": "13",
        **extra,
    }


class Roles:
    """The roles as processes; ``argv`` runs ``eda`` (this checkout's, or another release's for the
    upgrade test)."""

    def __init__(self, env: dict[str, str], logs: Path, argv: Sequence[str] = (EDA,)) -> None:
        self.env = env
        self.logs = logs
        self.argv = tuple(argv)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0
        self.killed: set[str] = set()

    def start(self, role: str) -> None:
        with (self.logs / f"{role}.log").open("ab") as out:
            self.procs[role] = subprocess.Popen(
                [*self.argv, *ROLES[role]], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self, role: str) -> None:
        proc = self.procs[role]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills += 1
        self.killed.add(role)

    def kill_at_random(self, stop: asyncio.Event, rng: random.Random) -> asyncio.Task[None]:
        """Start the chaos loop (``kill_roles_at_random``) as a task."""
        return asyncio.create_task(kill_roles_at_random(self, stop, rng))

    def end(self, stop: asyncio.Event, chaos: asyncio.Task[None]) -> None:
        """The end of a crash test, however it ends: no more kills, every role stopped."""
        stop.set()
        if not chaos.done():
            chaos.cancel()
        self.stop_all()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def kill_roles_at_random(roles: Roles, stop: asyncio.Event, rng: random.Random) -> None:
    """Until ``stop``: every role in turn, in a random order, SIGKILLed and restarted."""
    order: list[str] = []
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        if stop.is_set():
            return
        if not order:  # every role in turn, in a random order
            order = list(ROLES)
            rng.shuffle(order)
        role = order.pop()
        roles.kill(role)
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        roles.start(role)


async def settled_check(
    store: EventStore, ids: set[int], default_stock: int, timeout: float = 60.0
) -> tuple[dict[str, Any], list[RecordedEvent]]:
    """The invariants, awaited (bounded) rather than sampled once; and the events they were checked on."""
    settle = asyncio.get_running_loop().time() + timeout
    while True:
        events = await all_events(store)
        result = check(events, ids, default_stock)
        if not result["problems"] or asyncio.get_running_loop().time() > settle:
            return result, events
        await asyncio.sleep(1)


async def until_terminal(
    store: EventStore,
    ids: set[int],
    default_stock: int,
    roles: Roles,
    stop: asyncio.Event,
    chaos: asyncio.Task[None],
    *,
    within_s: float,
) -> None:
    """Wait (bounded by ``within_s``) until every saga of ``ids`` is terminal; the kills stop 120 s
    before the bound so the last stragglers can finish. Then the chaos loop ends and every role runs
    again for the final checks (commits, compensations)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = check(await all_events(store), ids, default_stock)
        pending = [p for p in result["problems"] if "not terminal" in p]
        if not pending or loop.time() > deadline:
            break
        if loop.time() > deadline - 120:
            stop.set()
        await asyncio.sleep(2)
    stop.set()
    await chaos
    for role in ROLES:
        if roles.procs[role].poll() is not None:
            roles.start(role)
