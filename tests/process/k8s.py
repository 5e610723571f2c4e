"""The emulated Kubernetes API (``tests/operator/emulator.py``: kmock plus what kopf needs, our CRDs
declared) served over HTTPS on a free port, for operators running as separate processes. Like a real API
server it answers 401 to a request without one of the accepted bearer tokens, so a test proves which
credentials the operator logged in with; and it writes the files a client needs: the CA, a kubeconfig, a
service-account directory."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import yaml

from app.dev.process import HOST, free_port
from process.procs import Popen, until
from tests.operator.emulator import EXAMPLES_DIR, Emulator, crds, declare
from tests.pki import make_ca, make_server_cert, write_cert, write_key

NAMESPACE = "default"


@dataclass
class K8sApi:
    """A running emulator: ``url``, the CA file, the tokens seen, the stored objects."""

    emulator: Any
    port: int
    ca: Path
    tokens: set[str]
    seen_tokens: set[str] = field(default_factory=set)
    rejected: int = 0

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def kubeconfig(self, path: Path, token: str, context: str = "kmock") -> Path:
        """A kubeconfig for this API with ``token`` (as kind and kubectl write them)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "emulated", "cluster": {"server": self.url, "certificate-authority": str(self.ca)}}
            ],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "emulated", "user": "operator", "namespace": NAMESPACE},
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def service_account_dir(self, path: Path, token: str) -> Path:
        """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "token").write_text(token)
        (path / "ca.crt").write_bytes(self.ca.read_bytes())
        (path / "namespace").write_text(NAMESPACE)
        return path

    async def apply(self, session: aiohttp.ClientSession, manifest: Path) -> tuple[str, str]:
        """``kubectl apply -f manifest`` into the default namespace; returns (plural, name)."""
        body = yaml.safe_load(manifest.read_text())  # noqa: ASYNC240 - a small file
        body["metadata"] |= {"namespace": NAMESPACE, "generation": 1}
        plural = next(
            c["spec"]["names"]["plural"] for c in crds() if c["spec"]["names"]["kind"] == body["kind"]
        )
        group_version = body["apiVersion"]
        url = f"{self.url}/apis/{group_version}/namespaces/{NAMESPACE}/{plural}"
        headers = {"Authorization": f"Bearer {next(iter(self.tokens))}"}
        async with session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        return plural, body["metadata"]["name"]

    def status(self, plural: str, name: str) -> dict[str, Any]:
        obj = self.emulator.objects[(f"eda.dev/v1alpha1/{plural}", NAMESPACE, name)]
        return dict(obj.get("status") or {})

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any]:
        for c in self.status(plural, name).get("conditions") or []:
            if c.get("type") == type_:
                return dict(c)
        return {}

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def examples() -> list[Path]:
    """Every example object of ``k8s/examples``."""
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def _guard(api: K8sApi) -> Callable[[aiohttp.web.BaseRequest], Any]:
    async def handle(request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in api.tokens:
            api.rejected += 1
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Unauthorized",
                "code": 401,
            }
            return aiohttp.web.json_response(status, status=401)
        api.seen_tokens.add(token)
        response: aiohttp.web.StreamResponse = await api.emulator(request)
        return response

    return handle


@contextlib.asynccontextmanager
async def emulated_api(folder: Path, tokens: set[str]) -> AsyncIterator[K8sApi]:
    """The emulator over HTTPS (a certificate for 127.0.0.1, localhost and kubernetes.default.svc)."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up
    ca_key, ca = make_ca("emulated kubernetes CA")
    key, cert = make_server_cert(
        ca_key, ca, cn="kube-apiserver", dns_names=("localhost", "kubernetes.default.svc"), ips=(HOST,)
    )
    write_cert(ca, folder / "ca.crt")
    write_cert(cert, folder / "apiserver.crt")
    write_key(key, folder / "apiserver.key")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(folder / "apiserver.crt", folder / "apiserver.key")
    async with Emulator() as emulator:
        declare(emulator)
        api = K8sApi(emulator, free_port(), folder / "ca.crt", set(tokens))
        # Watch streams wait for events forever: do not wait for them on shutdown.
        runner = aiohttp.web.ServerRunner(aiohttp.web.Server(_guard(api)), shutdown_timeout=0.2)
        await runner.setup()
        await aiohttp.web.TCPSite(runner, HOST, api.port, ssl_context=tls).start()
        try:
            yield api
        finally:
            await runner.cleanup()


async def apply_examples_until_succeeded(
    api: K8sApi, procs: Sequence[Popen], log: Path, timeout: float = 150.0
) -> dict[str, dict[str, Any]]:
    """``kubectl apply`` every example, then wait until each has condition ``Succeeded`` = True for its
    generation (a ProjectionRebuild ends ``Succeeded``; a scheduled Snapshot or Backup ran once and is
    ``Scheduled``); returns each object's status by name."""
    applied = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=api.client_ssl())) as session:
        for manifest in examples():
            applied.append(await api.apply(session, manifest))

    def done(plural: str, name: str) -> bool:
        condition = api.condition(plural, name, "Succeeded")
        return condition.get("status") == "True" and condition.get("observedGeneration") == 1

    for plural, name in applied:
        try:
            await until(
                lambda p=plural, n=name: done(p, n),
                f"{plural}/{name} Succeeded",
                timeout=timeout,
                procs=procs,
                log=log,
            )
        except AssertionError as exc:  # where it stands (phase, progress, conditions), not only "timed out"
            raise AssertionError(
                f"{exc}\n--- {plural}/{name} status ---\n{api.status(plural, name)}"
            ) from None
    return {name: api.status(plural, name) for plural, name in applied}
