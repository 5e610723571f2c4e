"""The chart and the code cannot drift: the rendered chart (default values) is brought up here as Helm and
the kubelet would (``process.release``: the pre-install hook Jobs in hook-weight order, each to
completion; then the release's plain Jobs — ``eda provision`` and ``db-setup`` + ``eda migrate`` — and
every Deployment together; each pod's initContainers first, then its container; exact argv and env, only
in-cluster addresses, ports and mount paths replaced, ``process.pods``), against ``eda infra --cluster 3
--bare`` (the chart's defaults want 3 stream replicas; nothing provisioned or migrated but by the Jobs).
The Jobs must complete and every role — api, projector, saga, the three workers, the operator — pass its
own probes; an unknown option makes a process exit, an unknown variable fails
``tests/deploy/test_chart_env.py``. The chart's ``helm test`` pod then runs an order to completion
through the API (authenticated by the session's OIDC provider), and the operator — logged in with the
service account mounted where the kubelet mounts it — reconciles every example.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from idp_support import Tokens

from app.dev.idp import DevIdentityProvider
from app.dev.process import HOST
from app.readmodel.migrations import load_migrations
from process.conftest import Infra
from process.k8s import K8sApi, apply_examples_until_succeeded, emulated_api
from process.pods import Container, Local, command, decode_secret, localize, process_env
from process.procs import (
    Popen,
    exit_code,
    http_status,
    mount_namespace_prefix,
    running,
    stop_all,
    tail,
    until,
)
from process.release import Workload, pre_install_hooks, release_workloads
from tests.deploy.deploytools import Installed, helm_install

pytestmark = pytest.mark.timeout(300)
SA_TOKEN = "operator-service-account-token"


@dataclass
class Deployed:
    """The chart's Jobs and eda pods running locally."""

    chart: Installed
    local: Local
    containers: dict[str, Container]  # Deployment name → its (main) container
    procs: dict[str, Popen]
    scratch: Path
    api: K8sApi | None
    account: Path | None
    job_output: dict[str, str] = field(default_factory=dict)  # "job/container" → what it printed
    # the release's plain Jobs, started with the Deployments (as Kubernetes does) and still running
    job_runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def log(self, pod: str) -> Path:
        return self.containers[pod].workdir / "out.log"


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory, idp: DevIdentityProvider, tokens: Tokens) -> Installed:
    """The default values plus what a user must set for authentication: the issuer (here the session's
    OIDC provider) and, for ``helm test``, a Secret with a trusted backend's token (created the way a
    user would, beside the release)."""
    values = {"auth": {"issuer": idp.issuer}, "tests": {"tokenSecret": {"name": "helm-test-token"}}}
    result = helm_install(values, tmp_path_factory.mktemp("helm"))
    assert result["ok"], result.get("error")
    chart = Installed(result)
    token = tokens("helm-test", "orders:read:all orders:write:any")
    secret = {"kind": "Secret", "metadata": {"name": "helm-test-token"}, "stringData": {"token": token}}
    chart.objects.append({"apiVersion": "v1", **secret})
    return chart


def _eda_image(chart: Installed) -> str:
    return str(chart.get("Deployment", "eda-api")["spec"]["template"]["spec"]["containers"][0]["image"])


async def _as_the_postgresql_image_starts(chart: Installed, infra: Infra) -> None:
    """What the bundled PostgreSQL image does on first start: its superuser (POSTGRES_USER ``postgres``)
    with the generated superuser password, the database ``eda`` (which exists already). eda's owner and
    logins are the migrate Job's ``db-setup`` step's to create."""
    password = decode_secret(chart.get("Secret", "eda-postgresql"), "superuser-password")
    conn = await asyncpg.connect(infra.database_url)
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        await conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
    finally:
        await conn.close()


async def _run_to_completion(
    container: Container, pod_spec: dict[str, Any], local: Local, account: Path | None
) -> str:
    log = container.workdir / "out.log"
    argv = command(container, pod_spec, account)
    with running(argv, process_env(container, local), log, cwd=container.workdir) as proc:
        code = await exit_code(proc, 120)
    assert code == 0, f"{container.label} exited with {code}:\n{tail(log)}"
    return log.read_text()


async def _init_containers(workload: Workload, deployed: Deployed) -> None:
    """A pod's initContainers, one after the other, each to completion (as the kubelet runs them)."""
    for init in workload.spec.get("initContainers", []):
        container = localize(
            deployed.chart, workload.name, workload.spec, init, deployed.local, deployed.scratch
        )
        output = await _run_to_completion(container, workload.spec, deployed.local, deployed.account)
        deployed.job_output[container.label] = output


async def _run_job(job: Workload, deployed: Deployed) -> None:
    await _init_containers(job, deployed)
    main = localize(
        deployed.chart, job.name, job.spec, job.spec["containers"][0], deployed.local, deployed.scratch
    )
    deployed.job_output[main.label] = await _run_to_completion(
        main, job.spec, deployed.local, deployed.account
    )


async def _start_pod(pod: Workload, deployed: Deployed, stack: contextlib.ExitStack) -> None:
    await _init_containers(pod, deployed)
    main = localize(
        deployed.chart, pod.name, pod.spec, pod.spec["containers"][0], deployed.local, deployed.scratch
    )
    log = main.workdir / "out.log"
    argv = command(main, pod.spec, deployed.account)
    deployed.containers[pod.name] = main
    deployed.procs[pod.name] = stack.enter_context(
        running(argv, process_env(main, deployed.local), log, cwd=main.workdir)
    )


@pytest.fixture(scope="module")
async def deployed(chart: Installed, infra_cluster: Infra) -> AsyncIterator[Deployed]:
    await _as_the_postgresql_image_starts(chart, infra_cluster)
    scratch = Path(tempfile.mkdtemp(prefix="eda-pods-"))
    pg_port = int(infra_cluster.database_url.rsplit(":", 1)[1].split("/")[0])
    async with contextlib.AsyncExitStack() as async_stack:
        async_stack.callback(shutil.rmtree, scratch, True)
        api: K8sApi | None = None
        account = None
        if mount_namespace_prefix() is not None:
            api = await async_stack.enter_async_context(emulated_api(scratch / "k8s", {SA_TOKEN}))
            account = api.service_account_dir(scratch / "serviceaccount", SA_TOKEN)
        local = Local(infra_cluster.nats_urls, pg_port, (HOST, api.port) if api else None)
        deployed = Deployed(chart, local, {}, {}, scratch, api, account)
        for hook in pre_install_hooks(chart):  # helm install: each hook Job to completion, by weight
            await _run_job(hook, deployed)
        image = _eda_image(chart)
        workloads = [w for w in release_workloads(chart) if w.spec["containers"][0]["image"] == image]
        pods = [
            w for w in workloads if w.kind == "Deployment" and (api is not None or w.name != "eda-operator")
        ]
        for job in (w for w in workloads if w.kind == "Job"):
            deployed.job_runs[job.name] = asyncio.create_task(_run_job(job, deployed), name=job.name)
        try:
            with contextlib.ExitStack() as stack:
                await asyncio.gather(*(_start_pod(pod, deployed, stack) for pod in pods))
                yield deployed
        finally:
            for run in deployed.job_runs.values():
                run.cancel()
            await asyncio.gather(*deployed.job_runs.values(), return_exceptions=True)


async def test_the_release_jobs_provision_and_migrate_as_helm_runs_them(
    deployed: Deployed, infra_cluster: Infra
) -> None:
    """Helm runs no hook in the default profile (bundled servers): the provision and migrate Jobs start
    with the roles, which wait for them; no role migrates (no initContainer any more)."""
    assert pre_install_hooks(deployed.chart) == []
    assert set(deployed.job_runs) == {"eda-provision-1", "eda-migrate-1"}
    await asyncio.wait_for(asyncio.gather(*deployed.job_runs.values()), 150)
    assert set(deployed.job_output) == {
        "eda-provision-1/provision",
        "eda-migrate-1/db-setup",
        "eda-migrate-1/migrate",
    }
    provision = deployed.job_output["eda-provision-1/provision"]
    assert "created stream EVENTS" in provision, provision
    assert re.fullmatch(r"provisioned at R3: \d+ created, 0 updated, 0 unchanged", provision.splitlines()[-1])
    names = [f"{m.version:04d}_{m.name}" for m in load_migrations()]
    assert deployed.job_output["eda-migrate-1/migrate"].splitlines()[-1] == "applied: " + ", ".join(names)
    for name, spec in ((w.name, w.spec) for w in release_workloads(deployed.chart) if w.kind == "Deployment"):
        assert not spec.get("initContainers"), f"{name} still has initContainers"
    conn = await asyncpg.connect(infra_cluster.database_url)
    try:  # the owner the db-setup step made: no superuser, but the database and the migrations are its
        owner = await conn.fetchrow(
            "SELECT rolsuper, pg_get_userbyid(d.datdba) AS dba FROM pg_roles, pg_database d"
            " WHERE rolname = 'eda' AND d.datname = current_database()"
        )
        applied_by = await conn.fetchval("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'eda'")
    finally:
        await conn.close()
    assert (owner["rolsuper"], owner["dba"]) == (False, "eda")
    assert applied_by in {"eda", "eda_migrator"}


async def _passes(url: str) -> bool:
    return await http_status(url) == 200


async def test_every_role_passes_its_probes(deployed: Deployed) -> None:
    assert {"eda-api", "eda-projector", "eda-saga", "eda-worker-inventory"} <= set(deployed.containers)
    for pod, container in deployed.containers.items():
        assert container.probes, f"{pod} has no probes"
        for kind, url in container.probes:
            what = f"{pod}'s {kind} {url}"
            await until(
                lambda u=url: _passes(u), what, timeout=90, procs=[deployed.procs[pod]], log=deployed.log(pod)
            )
    for pod in deployed.containers:
        assert "Traceback" not in deployed.log(pod).read_text(errors="replace"), tail(deployed.log(pod))


@pytest.mark.skipif(shutil.which("curl") is None, reason="the helm test pod's script needs curl")
async def test_the_helm_test_pod_runs_an_order_to_completion(deployed: Deployed) -> None:
    api = deployed.containers["eda-api"]
    url = f"http://{HOST}:{api.ports['http']}"
    await until(
        lambda: _passes(f"{url}/readyz"), "the API's /readyz", timeout=90, procs=[deployed.procs["eda-api"]]
    )
    hook = next(h for h in deployed.chart.hooks if h["kind"] == "Pod")
    service = deployed.chart.get("Service", "eda-api")["spec"]["ports"][0]["port"]
    local = Local(
        deployed.local.nats_urls, deployed.local.pg_port, services={f"http://eda-api:{service}": url}
    )
    container = localize(
        deployed.chart,
        hook["metadata"]["name"],
        hook["spec"],
        hook["spec"]["containers"][0],
        local,
        deployed.scratch,
    )
    output = await _run_to_completion(container, hook["spec"], local, None)
    assert "completed" in output.splitlines()[-1], output


async def test_the_operator_logs_in_with_its_service_account_and_reconciles_every_example(
    deployed: Deployed,
) -> None:
    if deployed.api is None:
        pytest.skip(
            "no private mount namespace here (unshare --mount refused): cannot mount a service account"
        )
    proc, log = deployed.procs["eda-operator"], deployed.log("eda-operator")
    statuses = await apply_examples_until_succeeded(deployed.api, [proc], log)
    assert statuses["orders-rebuild"]["phase"] == "Succeeded"
    backups = deployed.containers["eda-operator"].env["EDA_BACKUP_DIR"]  # the claim's local stand-in
    assert list((Path(backups) / "nightly").iterdir()), "the Backup example wrote nothing on the volume"
    text = log.read_text()
    assert f"logging in to the Kubernetes API {deployed.api.url} with the in-cluster service account" in text
    assert deployed.api.seen_tokens == {SA_TOKEN}


async def test_every_role_exits_0_on_sigterm(deployed: Deployed) -> None:
    """Kubernetes stops a pod with one SIGTERM; anything but 0 is a failed container (and the projector,
    without a handler, used to die of the signal itself: 143)."""
    codes = await stop_all(deployed.procs)
    assert codes == dict.fromkeys(codes, 0), f"exit codes on SIGTERM: {codes}"
