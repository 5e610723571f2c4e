"""``eda operator`` as a separate process, logging in the way a user runs it: with a kubeconfig (an
HTTPS API that checks the bearer token and a CA file, as kind writes them) it reconciles every example
of ``k8s/examples`` on real NATS and PostgreSQL; without credentials, or with a broken kubeconfig, it
exits at once with one line saying why. The in-cluster login (the chart's Deployment, a mounted service
account) is in ``test_chart_roles.py``."""

from __future__ import annotations

import json

import pytest
from e2e.conftest import role_env
from nats.aio.client import Client as NATS

from app.dev.process import free_port
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.settings import Settings
from process.k8s import apply_examples_until_succeeded, emulated_api
from process.procs import (
    EDA,
    exit_code,
    http_status,
    isolated_from_a_real_service_account,
    running,
    until,
)
from tests.operator.seeding import folded_rows, live_rows, project_all, seed_orders

pytestmark = pytest.mark.timeout(180)
SCHEMA = "readmodel"
ORDERS = 30
TOKEN = "kubeconfig-token"


async def _seeded_then_damaged(nc: NATS, dsn: str) -> dict[int, tuple[object, ...]]:
    """Orders in the event store and the read model, then a read model a rebuild must repair; returns
    the rows a correct read model has."""
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    conn = await db.connect(dsn)
    try:
        await seed_orders(store, 1, ORDERS)
        await project_all(conn, store, SCHEMA)
        expected = await folded_rows(store)
        await conn.execute(f"UPDATE {SCHEMA}.orders SET status = 'damaged' WHERE order_id <= 10")
        assert await live_rows(conn, SCHEMA) != expected
    finally:
        await conn.close()
        await store.close()
    return expected


async def test_operator_with_a_kubeconfig_reconciles_every_example(
    nc: NATS, nats_url: str, readmodel_dsn: str, short_tmp
) -> None:
    expected = await _seeded_then_damaged(nc, readmodel_dsn)
    settings = Settings(nats_url=nats_url, database_url=readmodel_dsn)  # type: ignore[arg-type]
    log, health = short_tmp / "operator.log", free_port()
    async with emulated_api(short_tmp / "k8s", {TOKEN}) as api:
        kubeconfig = api.kubeconfig(short_tmp / "kubeconfig", TOKEN)
        (short_tmp / "home").mkdir()
        home, backups = short_tmp / "home", short_tmp / "backups"  # the Backup example writes below it
        env = role_env(
            settings,
            KUBECONFIG=str(kubeconfig),
            HOME=str(home),
            EDA_BACKUP_DIR=str(backups),
            EDA_LOG_LEVEL="INFO",
        )
        argv = isolated_from_a_real_service_account([EDA, "operator", f"--health-port={health}"], short_tmp)
        with running(argv, env, log) as proc:
            statuses = await apply_examples_until_succeeded(api, [proc], log)
            healthz = f"http://127.0.0.1:{health}/healthz"
            await until(lambda: _is_200(healthz), "the operator's /healthz", procs=[proc], log=log)
    text = log.read_text()
    assert f"logging in to the Kubernetes API {api.url} with kubeconfig {kubeconfig} (context kmock)" in text
    assert api.seen_tokens == {TOKEN}
    assert statuses["orders-rebuild"]["phase"] == "Succeeded"
    assert statuses["orders-snapshot"]["phase"] == "Scheduled"  # it has a schedule: ran once, waits
    assert statuses["orders-snapshot"]["aggregatesScanned"] == ORDERS
    assert statuses["eda-every-6h"]["phase"] == "Scheduled"
    assert [p.name for p in (backups / "nightly").iterdir()], "the Backup example wrote no backup"
    conn = await db.connect(readmodel_dsn)
    try:
        assert await live_rows(conn, SCHEMA) == expected  # the rebuild repaired the read model
    finally:
        await conn.close()
    assert "Traceback" not in text


async def _is_200(url: str) -> bool:
    return await http_status(url) == 200


@pytest.mark.parametrize(
    ("kubeconfig", "message"),
    [
        (None, "eda operator: error: no Kubernetes credentials: no in-cluster service account"),
        ("missing", "eda operator: error: cannot use the kubeconfig {path}: [Errno 2] No such file"),
    ],
)
async def test_operator_without_credentials_exits_with_one_line(
    short_tmp, kubeconfig: str | None, message: str
) -> None:
    (short_tmp / "home").mkdir()
    env = role_env(Settings(), HOME=str(short_tmp / "home"))  # no ~/.kube/config there
    env.pop("KUBECONFIG", None)
    path = short_tmp / "nowhere" / "kubeconfig"
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(path)
    log = short_tmp / "operator.log"
    argv = isolated_from_a_real_service_account([EDA, "operator", f"--health-port={free_port()}"], short_tmp)
    with running(argv, env, log) as proc:
        code = await exit_code(proc)
    lines = log.read_text().splitlines()
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(message.format(path=path)), lines


async def test_operator_whose_credentials_the_api_rejects_exits_with_one_line(short_tmp) -> None:
    async with emulated_api(short_tmp / "k8s", {TOKEN}) as api:
        kubeconfig = api.kubeconfig(short_tmp / "kubeconfig", "a-revoked-token")
        (short_tmp / "home").mkdir()
        env = role_env(Settings(), KUBECONFIG=str(kubeconfig), HOME=str(short_tmp / "home"))
        log = short_tmp / "operator.log"
        argv = [EDA, "operator", f"--health-port={free_port()}"]
        with running(isolated_from_a_real_service_account(argv, short_tmp), env, log) as proc:
            code = await exit_code(proc)
    lines = log.read_text().splitlines()
    assert code == 1, lines
    assert api.rejected > 0
    rejected = f"the Kubernetes API {api.url} rejected kubeconfig {kubeconfig} (context kmock)"
    assert lines[-1] == f"eda operator: error: {rejected}"
    for line in lines[:-1]:  # kopf's own error logs before it: JSON lines, not a bare traceback
        json.loads(line)
