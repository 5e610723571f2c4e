"""Sagas started before an upgrade complete after it (issue 16's acceptance): the previous release's
roles — the saga design that stored ``SagaStarted``/``SagaAdvanced`` for every step, a ``ship`` command
and one durable timer per saga — run from this repository's own history (commit ``OLD_RELEASE``, the
last one of that design) as separate processes on JetStream provisioned by that release; while orders
arrive, this checkout's ``eda provision`` updates streams and consumers in place (where the chart's
pre-upgrade hook runs it: while the old roles work) and the old roles are SIGKILLed with sagas at
every stage. Then this checkout's roles: every saga must become terminal with the crash test's
invariants, no step lost to a timeout, every timer the old sagas armed fired and handled. And the upgrade
as the chart rolls it while orders flow: the workers side by side with the old ones for a while, the
saga recreated (``test_a_helm_upgrade_rolls_the_workers_and_recreates_the_saga`` says why)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from app.domain.order import ORDER
from app.domain.registry import all_event_types
from app.domain.saga import SAGA, Saga, SagaEvent, SagaStatus, StepName, StepStatus
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, RecordedEvent
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.readmodel.deadletter import DLQ_STREAM
from app.saga.runner import ORCHESTRATOR_CONSUMER
from app.saga.timeouts import TIMEOUTS_CONSUMER, TIMERS_STREAM
from app.service.handler import CommandHandler
from app.workers.commands import COMMANDS_STREAM, WORKERS
from tests.support.invariants import all_events
from tests.support.jetstream import delete_all_streams
from tests.support.orders import random_order
from tests.support.roles import EDA, ROLES, Roles, saga_env, settled_check

OLD_RELEASE = "d598224"
"""The last commit of the design that stored a saga record for every step (before 18849e9)."""
ROOT = Path(__file__).resolve().parents[2]
ORDERS = 200
DEFAULT_STOCK = 20  # ~600 units ordered over 20 products: some orders find the stock short
OLD_STEP_TIMEOUT_S = (
    "15"  # above the waves' time; the old sagas' timers fire after the upgrade, into the new timeout handling
)
NEW_STEP_TIMEOUT_S = "60"  # above the upgrade's downtime on a loaded machine (roles take seconds to start)
AT_LEAST = 5  # sagas at each stage when the old roles are killed
WAVES = {  # the orders that stop at each stage: all roles up, then shipping down, then payment down too
    "done": range(1, 51),
    "paid, not shipped": range(51, 126),
    "started, not paid": range(126, ORDERS + 1),
}


@pytest.fixture(scope="module")
def old_release() -> Iterator[Path]:
    """The previous release's ``app`` package, extracted from git history."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{OLD_RELEASE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {OLD_RELEASE} (the previous saga design) is not in this clone: the upgrade test needs "
            "the repository's history (`git fetch --unshallow`, or clone without --depth)"
        )
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", OLD_RELEASE, "app"],
        capture_output=True,
        check=True,
    )
    tree = Path(tempfile.mkdtemp(prefix="eda-old-"))
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    yield tree
    shutil.rmtree(tree, ignore_errors=True)


def old_eda(tree: Path) -> list[str]:
    """``eda`` of the previous release: its ``app.cli:main`` (the ``eda`` entry point) first on the path."""
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(tree)!r}); from app.cli import main; main()",
    ]


def stages(events: list[RecordedEvent], ids: set[int]) -> Counter[str]:
    """Where each saga is by the records the old saga stored (the old design's own view)."""
    records: dict[int, list[SagaEvent]] = {oid: [] for oid in ids}
    for e in events:
        if e.envelope.aggregate_type == "saga" and int(e.envelope.aggregate_id) in records:
            records[int(e.envelope.aggregate_id)].append(e.event)
    out: Counter[str] = Counter()
    for oid in ids:
        saga = SAGA.fold(records[oid]) if records[oid] else None
        out[_stage(saga)] += 1
    return out


def _stage(saga: object) -> str:
    if not isinstance(saga, Saga):
        return "no saga record"
    if saga.reason and "timed out" in saga.reason:
        return f"{saga.status.value}, timed out"
    if saga.status is not SagaStatus.RUNNING:
        return "compensating" if saga.status is SagaStatus.COMPENSATING else f"{saga.status.value}"
    running = {s.name for s in saga.running()}
    if StepName.RESERVE in running or StepName.CHARGE in running:
        return "started, not paid"
    if StepName.SHIP in running:
        return "paid, not shipped"
    shipped = saga.step(StepName.SHIP)
    return "shipped, not completed" if shipped and shipped.status is StepStatus.SUCCEEDED else "other"


async def until(
    store: JetStreamEventStore, wave: range, enough: Callable[[Counter[str]], bool], *, within_s: float = 30
) -> None:
    """Until a wave's sagas have reached its stage (bounded: failing with where they are)."""
    give_up = asyncio.get_running_loop().time() + within_s
    while not enough(stage := stages(await all_events(store), set(wave))):
        assert asyncio.get_running_loop().time() < give_up, (
            f"orders {wave.start}-{wave.stop - 1}: {dict(stage)}"
        )
        await asyncio.sleep(0.1)


async def until_pulling(nc: NATS, *, within_s: float) -> None:
    """Until every role pulls from its durable consumer (the roles are up: starting a process takes
    seconds on a loaded machine, and orders must not wait for them past their steps' timeouts)."""
    js, give_up = nc.jetstream(), asyncio.get_running_loop().time() + within_s
    waiting = {
        (STREAM, ORCHESTRATOR_CONSUMER),
        (TIMERS_STREAM, TIMEOUTS_CONSUMER),
        *((COMMANDS_STREAM, f"worker-{w}") for w in WORKERS),
    }
    while waiting:
        waiting = {c for c in waiting if not (await js.consumer_info(*c)).num_waiting}
        assert asyncio.get_running_loop().time() < give_up, f"roles not pulling: {waiting}"
        await asyncio.sleep(0.1)


async def provision(argv: list[str], env: dict[str, str]) -> str:
    """Run ``eda provision`` (of either release); its report."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@dataclass
class Upgrade:
    """Both releases' roles on one JetStream provisioned by the old release (old roles up and pulling),
    and a store to send orders and read the outcome."""

    old: Roles
    new: Roles
    nc: NATS
    store: JetStreamEventStore
    orders: CommandHandler[Any, Any, Any]
    env: dict[str, str]


@contextlib.asynccontextmanager
async def releases(
    nats_url: str, short_tmp: Path, old_release: Path, old_step_timeout_s: str
) -> AsyncIterator[Upgrade]:
    await delete_all_streams(nats_url)
    env = saga_env(nats_url, DEFAULT_STOCK, EDA_SAGA_STEP_TIMEOUT_S=NEW_STEP_TIMEOUT_S)
    old_env = env | {"EDA_SAGA_STEP_TIMEOUT_S": old_step_timeout_s}
    await provision([*old_eda(old_release), "provision"], old_env)
    (short_tmp / "old").mkdir()
    (short_tmp / "new").mkdir()
    old = Roles(old_env, short_tmp / "old", old_eda(old_release))
    new = Roles(env, short_tmp / "new")
    nc = await nats.connect(nats_url)
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    try:
        for role in ROLES:
            old.start(role)
        await until_pulling(nc, within_s=30)
        yield Upgrade(old, new, nc, store, CommandHandler(store, ORDER), env)
    finally:
        old.stop_all()
        new.stop_all()
        if os.environ.get("EDA_CRASH_LOGS"):
            shutil.copytree(short_tmp, os.environ["EDA_CRASH_LOGS"], dirs_exist_ok=True)
        await store.close()
        await nc.close()


async def send_orders(
    orders: CommandHandler[Any, Any, Any], wave: range, rng: random.Random, tag: str
) -> None:
    await asyncio.gather(
        *(
            orders.execute(oid, random_order(rng, oid), Metadata(correlation_id=f"{tag}-{oid}"))
            for oid in wave
        )
    )


async def test_sagas_started_before_the_upgrade_complete_after_it(
    nats_url: str, short_tmp: Path, old_release: Path
) -> None:
    rng, ids = random.Random(16), set(range(1, ORDERS + 1))
    async with releases(nats_url, short_tmp, old_release, OLD_STEP_TIMEOUT_S) as up:
        old, new, nc, store, env = up.old, up.new, up.nc, up.store, up.env

        async def arrive(wave: range) -> None:
            await send_orders(up.orders, wave, rng, "upgrade")

        # Sagas at every stage at once, whatever the host's speed: the old roles are taken down in
        # turn, so each wave stops at the next stage (racing a free-running backlog with a poll missed
        # the window on a faster machine: every saga had finished before the poll saw one mid-flight).
        # The upgrade's provisioning runs where the chart's pre-upgrade hook runs it: while the old
        # roles work (the shipping worker's new consumer then sees the old sagas' OrderPaid too).
        provisioning = asyncio.create_task(provision([EDA, "provision"], env))
        await arrive(WAVES["done"])
        await until(store, WAVES["done"], lambda s: s["completed"] + s["cancelled"] == len(WAVES["done"]))
        old.kill("shipping")
        await arrive(WAVES["paid, not shipped"])
        await until(store, WAVES["paid, not shipped"], lambda s: s["paid, not shipped"] >= 2 * AT_LEAST)
        old.kill("payment")
        await arrive(WAVES["started, not paid"])
        await until(store, WAVES["started, not paid"], lambda s: s["started, not paid"] >= 2 * AT_LEAST)
        for role in ("saga", "inventory"):
            old.kill(role)
        killed_at = asyncio.get_running_loop().time()
        at_kill, old_timers = stages(await all_events(store), ids), await armed_timers(nc)
        print(f"\nupgrade test: at the kill {dict(at_kill)}, {len(old_timers)} timers armed")
        # The test is about sagas caught mid-flight: it cannot pass with all of them done or none begun.
        for stage in ("started, not paid", "paid, not shipped"):
            assert at_kill[stage] >= AT_LEAST, (stage, at_kill)
        assert at_kill["completed"] + at_kill["cancelled"] >= AT_LEAST, at_kill
        assert len(old_timers) >= AT_LEAST, old_timers  # one per running saga in the old design
        assert not [s for s in at_kill if "timed out" in s], at_kill  # the old roles were up all along

        print(await provisioning)
        for role in ROLES:
            new.start(role)
        result, _ = await settled_check(store, ids, DEFAULT_STOCK, timeout=45)
        print(f"upgrade test: outcome {result['outcome']}, reasons {result['reasons']}")
        assert result["problems"] == [], result["problems"][:20]
        assert result["outcome"].get("completed", 0) > 0
        assert result["outcome"].get("cancelled", 0) > 0
        assert {"reservation failed", "payment declined"} <= set(result["reasons"]), result["reasons"]
        timed_out = [r for r in result["reasons"] if "timed out" in r]
        assert not timed_out, f"steps lost across the upgrade: {timed_out} ({result['reasons']})"
        await old_timers_fired(nc, old_timers, killed_at)


async def armed_timers(nc: NATS) -> set[str]:
    """The saga timers scheduled and not fired yet (``sched.saga.<order>...`` subjects)."""
    info = await nc.jetstream().stream_info(TIMERS_STREAM, subjects_filter="sched.saga.>")
    return set(info.state.subjects or {})


async def old_timers_fired(nc: NATS, old: set[str], killed_at: float) -> None:
    """The timers the old sagas left armed fire (after their deadline) into the new saga, which
    handles every fired timer (none left pending or unacked)."""
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, killed_at + float(OLD_STEP_TIMEOUT_S) + 2 - loop.time()))
    settle = loop.time() + 10
    while True:
        left = old & await armed_timers(nc)
        info = await js.consumer_info(TIMERS_STREAM, TIMEOUTS_CONSUMER)
        idle = info.num_pending == 0 and info.num_ack_pending == 0
        if (idle and not left) or loop.time() > settle:
            break
        await asyncio.sleep(0.5)
    assert not left, f"old timers that never fired: {sorted(left)[:10]}"
    assert info.delivered.stream_seq > 0, "no timer fired"
    assert idle, f"fired timers left unhandled: {info.num_pending} pending, {info.num_ack_pending} unacked"


pytestmark = pytest.mark.timeout(150)


async def test_a_helm_upgrade_rolls_the_workers_and_recreates_the_saga(
    nats_url: str, short_tmp: Path, old_release: Path
) -> None:
    """What ``helm upgrade`` does to the roles while orders flow: each worker Deployment rolls (maxSurge
    1: an old and a new worker pull from the same consumer for a while), the saga Deployment is
    recreated (the old orchestrator stops before the new one starts). Nothing may be lost or applied
    twice: the crash test's invariants, no step timed out, no dead letter.

    Why the saga is recreated: with an old (13-message) and a new orchestrator pulling from
    ``saga-orchestrator`` at once, a fact of a saga the new design started can reach the old
    orchestrator, which finds no saga record, does nothing and acks it — 8 of 200 sagas then waited for
    their step timeout and were compensated in the run that found it. Two orchestrators of the same
    release side by side are safe (same view, conditional appends)."""
    rng, ids = random.Random(17), set(range(1, ORDERS + 1))
    async with releases(nats_url, short_tmp, old_release, NEW_STEP_TIMEOUT_S) as up:
        old, new, nc, store = up.old, up.new, up.nc, up.store
        await provision([EDA, "provision"], up.env)  # the pre-upgrade hook, while the old roles work

        async def arrivals() -> None:  # ~8 s of orders: before, during and after the rollout
            for wave in range(1, ORDERS + 1, 10):
                await send_orders(up.orders, range(wave, wave + 10), rng, "rolling")
                await asyncio.sleep(0.4)

        arriving = asyncio.create_task(arrivals())
        await until(store, range(1, 31), lambda s: s["no saga record"] == 0)  # the old saga at work
        old.kill("saga")  # Recreate: the old pod is gone before the new one starts
        for role in ROLES:
            new.start(role)
        await asyncio.sleep(5.0)  # RollingUpdate: old and new workers pull from the same consumers
        for role in ("inventory", "payment", "shipping"):
            old.kill(role)
        await arriving
        result, events = await settled_check(store, ids, DEFAULT_STOCK, timeout=60)
        by_old = {int(e.envelope.aggregate_id) for e in events if e.envelope.type == "SagaStarted"} & ids
        print(f"\nrolling update: old release started {len(by_old)} sagas, the new one {len(ids - by_old)}")
        print(f"rolling update: outcome {result['outcome']}, reasons {result['reasons']}")
        assert by_old, "the old release started no saga"  # the old saga stores SagaStarted, the new none
        assert ids - by_old, "the new release started no saga"
        assert result["problems"] == [], result["problems"][:20]
        timed_out = [r for r in result["reasons"] if "timed out" in r]
        assert not timed_out, f"steps lost in the rollout: {timed_out} ({result['reasons']})"
        dead = await nc.jetstream().stream_info(DLQ_STREAM)
        assert dead.state.messages == 0, f"{dead.state.messages} dead letters"
