"""The chart and the code cannot drift: every pod of the rendered chart (default values) that runs the eda
image — api, projector, saga, the three workers, the operator — is started here as the kubelet would
start it (``process.pods``: its initContainers ``migrate`` and ``db-user`` first, to completion, then
the container; exact argv and env, only in-cluster addresses, ports and mount paths replaced), against
``eda infra --cluster 3`` (the chart's defaults want 3 stream replicas). Each must pass its own probes;
an unknown option makes a process exit, an unknown variable fails ``tests/deploy/test_chart_env.py``.
The chart's ``helm test`` pod then runs an order to completion through the API (authenticated by the
session's OIDC provider), and the operator — logged in with the service account mounted where the kubelet
mounts it — reconciles every example.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from tests.deploy.deploytools import Installed, helm_install

pytestmark = pytest.mark.timeout(300)
SA_TOKEN = "operator-service-account-token"


@dataclass
class Deployed:
    """The chart's eda pods running locally."""

    chart: Installed
    local: Local
    containers: dict[str, Container]  # pod name → its (main) container
    procs: dict[str, Popen]
    init_output: dict[str, str]  # "pod/initContainer" → what it printed
    scratch: Path
    api: K8sApi | None
    # One run per distinct init container (argv and env): every pod's `migrate` is the same container,
    # so the others wait for that run, as a pod waits for its own.
    init_runs: dict[tuple[str, ...], asyncio.Task[str]] = field(default_factory=dict)

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


def _eda_pods(chart: Installed) -> list[tuple[str, dict[str, Any]]]:
    image = chart.get("Deployment", "eda-api")["spec"]["template"]["spec"]["containers"][0]["image"]
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in chart.workloads()
        if o["spec"]["template"]["spec"]["containers"][0]["image"] == image
    ]


async def _bootstrap_database(chart: Installed, infra: Infra) -> None:
    """What the bundled PostgreSQL image does on first start: its POSTGRES_USER, a superuser with the
    generated password (the database ``eda`` exists already)."""
    password = decode_secret(chart.get("Secret", "eda-postgresql"), "password")
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute("DROP ROLE IF EXISTS eda")
        await conn.execute(f"CREATE ROLE eda SUPERUSER LOGIN PASSWORD '{password}'")
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


async def _start_pod(
    name: str, spec: dict[str, Any], deployed: Deployed, account: Path | None, stack: contextlib.ExitStack
) -> None:
    for init in spec.get("initContainers", []):
        container = localize(deployed.chart, name, spec, init, deployed.local, deployed.scratch)
        key = (*container.argv, *sorted(f"{k}={v}" for k, v in container.env.items()))
        if key not in deployed.init_runs:
            run = _run_to_completion(container, spec, deployed.local, account)
            deployed.init_runs[key] = asyncio.create_task(run)
        deployed.init_output[container.label] = await deployed.init_runs[key]
    main = localize(deployed.chart, name, spec, spec["containers"][0], deployed.local, deployed.scratch)
    log = main.workdir / "out.log"
    argv = command(main, spec, account)
    deployed.containers[name] = main
    deployed.procs[name] = stack.enter_context(
        running(argv, process_env(main, deployed.local), log, cwd=main.workdir)
    )


@pytest.fixture(scope="module")
async def deployed(chart: Installed, infra_cluster: Infra) -> AsyncIterator[Deployed]:
    await _bootstrap_database(chart, infra_cluster)
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
        deployed = Deployed(chart, local, {}, {}, {}, scratch, api)
        pods = [(n, s) for n, s in _eda_pods(chart) if api is not None or n != "eda-operator"]
        with contextlib.ExitStack() as stack:
            await asyncio.gather(*(_start_pod(n, s, deployed, account, stack) for n, s in pods))
            yield deployed


def test_every_init_container_runs_to_completion(deployed: Deployed) -> None:
    expected = {f"{n}/migrate" for n in deployed.procs} | {"eda-api/db-user", "eda-projector/db-user"}
    assert set(deployed.init_output) == expected
    for label, output in deployed.init_output.items():
        if label.endswith("/migrate"):
            assert output.splitlines()[-1].startswith("applied: "), (label, output)


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
