"""Crash test with separate processes: ``eda saga`` and ``eda worker inventory|payment|shipping`` run as
subprocesses against the session's nats-server; while 500 sagas run concurrently, a chaos task SIGKILLs
a random role at random moments and restarts it. Afterwards every saga is terminal and the invariants
hold (``tests/saga/invariants.py``)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import pytest

from app.domain.order import ORDER, CreateOrder, OrderItem
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, RecordedEvent
from app.eventstore.jetstream import JetStreamEventStore
from app.service.handler import CommandHandler
from tests.saga.invariants import all_events, check

EDA = str(Path(sys.executable).parent / "eda")
ROLES = {
    "saga": ["saga"],
    "inventory": ["worker", "inventory"],
    "payment": ["worker", "payment"],
    "shipping": ["worker", "shipping"],
}
ORDERS = 500
DEFAULT_STOCK = 120


class Roles:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0
        self.killed: set[str] = set()

    def start(self, role: str) -> None:
        with (self.logs / f"{role}.log").open("ab") as out:
            self.procs[role] = subprocess.Popen(
                [EDA, *ROLES[role]], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self, role: str) -> None:
        proc = self.procs[role]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills += 1
        self.killed.add(role)

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


def random_order(rng: random.Random, oid: int) -> CreateOrder:
    """An order of 0-3 of products 1..20; amounts that complete, and some the payment worker declines."""
    items = tuple(
        OrderItem(product_id=p, quantity=rng.randint(1, 3))
        for p in rng.sample(range(1, 21), rng.randint(0, 3))
    )
    amount = Decimal(rng.choice(["10.00", "99.99", "950.00"]))
    return CreateOrder(
        order_id=oid, user_id=rng.randint(1, 20), items=items, amount=amount, at=datetime.now(UTC)
    )


async def settled_check(
    store: JetStreamEventStore, ids: set[int], default_stock: int, timeout: float = 60.0
) -> tuple[dict[str, Any], list[RecordedEvent]]:
    """The invariants, awaited (bounded) rather than sampled once; and the events they were checked on."""
    settle = asyncio.get_running_loop().time() + timeout
    while True:
        events = await all_events(store)
        result = check(events, ids, default_stock)
        if not result["problems"] or asyncio.get_running_loop().time() > settle:
            return result, events
        await asyncio.sleep(1)


async def _chaos(roles: Roles, stop: asyncio.Event, rng: random.Random) -> None:
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


async def test_sigkill_roles_during_500_sagas(nats_url: str, js_clean: None, short_tmp: Path) -> None:
    env = dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
        "EDA_DEFAULT_STOCK": str(DEFAULT_STOCK),
        "EDA_SAGA_STEP_TIMEOUT_S": "15",
        "EDA_PAYMENT_DECLINE_ABOVE": "900",
        "EDA_PAYMENT_FAULT_FAIL_RATE": "0.05",
        "EDA_SHIPPING_FAIL_USER_IDS": "13",
    }
    rng = random.Random(4)
    roles = Roles(env, short_tmp)
    nc = await nats.connect(nats_url)
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    orders = CommandHandler(store, ORDER)
    for role in ROLES:
        roles.start(role)
    stop = asyncio.Event()
    chaos = asyncio.create_task(_chaos(roles, stop, rng))
    try:
        await asyncio.sleep(1.0)

        async def create(oid: int) -> None:
            await orders.execute(oid, random_order(rng, oid), Metadata(correlation_id=f"crash-{oid}"))

        for wave in range(0, ORDERS, 25):  # ~12 s of arrivals: the kills land while sagas run
            await asyncio.gather(*(create(oid) for oid in range(wave + 1, wave + 26)))
            await asyncio.sleep(0.6)

        deadline = asyncio.get_running_loop().time() + 150
        ids = set(range(1, ORDERS + 1))
        while True:
            result = check(await all_events(store), ids, DEFAULT_STOCK)
            pending = [p for p in result["problems"] if "not terminal" in p]
            if not pending or asyncio.get_running_loop().time() > deadline:
                break
            if asyncio.get_running_loop().time() > deadline - 120:
                stop.set()  # let the last stragglers finish without further kills
            await asyncio.sleep(2)
        stop.set()
        await chaos
        for role in ROLES:  # every role alive for the final checks (commits, compensations)
            if roles.procs[role].poll() is not None:
                roles.start(role)
        # Terminal sagas may still have their stock commit in flight (a killed worker's command comes
        # back after ack_wait; a lost one is re-sent by the step timer): await the invariants, bounded.
        result, _ = await settled_check(store, ids, DEFAULT_STOCK)
        print(f"\ncrash test: {roles.kills} kills, outcome {result['outcome']}, reasons {result['reasons']}")
        assert result["problems"] == [], result["problems"][:20]
        assert roles.killed == set(ROLES)
        assert result["outcome"].get("completed", 0) > 0
        assert result["outcome"].get("cancelled", 0) > 0
    finally:
        stop.set()
        if not chaos.done():
            chaos.cancel()
        roles.stop_all()
        if os.environ.get("EDA_CRASH_LOGS"):
            import shutil

            shutil.copytree(short_tmp, os.environ["EDA_CRASH_LOGS"], dirs_exist_ok=True)
        await store.close()
        await nc.close()


pytestmark = pytest.mark.timeout(280)
