"""The rendered chart's containers, started as local processes the way the kubelet starts them.

argv is the container's ``command`` (else the image's ``ENTRYPOINT``, read from the Dockerfile; ``eda`` is
this venv's console script) followed by its ``args``; the environment is the container's ``env`` with
``valueFrom`` resolved from the rendered Secrets and ConfigMaps. Only what must point at this machine
is replaced, each by an explicit rule: the in-cluster addresses of NATS (node i → local node i), of
PostgreSQL and of the API Service; every ``containerPort`` (a free port instead, wherever the container
is given it: an argument or an environment value); every ``mountPath`` (a directory filled from the
volume's ConfigMap/Secret; an emptyDir or a new claim is an empty one), so nothing writes to this
machine's own path. An in-cluster address left over fails the test rather than a DNS lookup. Health
comes from the container's own probes (``httpGet`` path and named port).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.dev.postgres import postgres_bin_dir
from app.dev.process import HOST, free_port
from process.procs import EDA, SERVICE_ACCOUNT_PATH, with_service_account
from tests.deploy.deploytools import ROOT, Installed

Obj = dict[str, Any]
RELEASE, NAMESPACE = "eda", "default"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
IN_CLUSTER = re.compile(rf"\b{RELEASE}-[a-z-]+(\.{NAMESPACE}\.svc|\.svc|:\d+)|\.svc\b")


def entrypoint() -> list[str]:
    """The image's ``ENTRYPOINT`` (exec form), as the Dockerfile says it."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            argv: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
            return argv
    raise AssertionError("no ENTRYPOINT in the Dockerfile")


@dataclass(frozen=True)
class Local:
    """Where the chart's in-cluster names point on this machine."""

    nats_urls: list[str]
    pg_port: int
    kubernetes: tuple[str, int] | None = None  # the emulated API (KUBERNETES_SERVICE_HOST/PORT)
    services: dict[str, str] = field(default_factory=dict)  # "http://eda-api:8082" → a local URL

    def substitutions(self) -> list[tuple[str, str]]:
        """(in-cluster text, local text), longest first."""
        subs = [
            (f"nats://{RELEASE}-nats-{i}.{RELEASE}-nats-headless.{NAMESPACE}.svc:4222", url)
            for i, url in enumerate(self.nats_urls)
        ]
        subs += [(f"@{RELEASE}-postgresql.{NAMESPACE}.svc:5432/", f"@{HOST}:{self.pg_port}/")]
        subs += list(self.services.items())
        return sorted(subs, key=lambda s: -len(s[0]))

    def exact(self) -> dict[str, str]:
        """Whole values replaced (libpq's PGHOST/PGPORT)."""
        return {f"{RELEASE}-postgresql": HOST, "5432": str(self.pg_port)}


@dataclass
class Container:
    """One container ready to start locally."""

    pod: str
    name: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int]  # port name → the local port standing in for its containerPort
    probes: list[tuple[str, str]]  # (probe kind, local URL)
    workdir: Path

    @property
    def label(self) -> str:
        return f"{self.pod}/{self.name}"


def decode_secret(obj: Obj, key: str) -> str:
    if obj.get("stringData", {}).get(key) is not None:
        return str(obj["stringData"][key])
    return base64.b64decode(obj["data"][key]).decode()


def resolve_env(release: Installed, container: Obj) -> dict[str, str]:
    """``env`` with ``valueFrom`` secretKeyRef/configMapKeyRef resolved from the rendered release."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            env[item["name"]] = decode_secret(
                release.get("Secret", ref["secretKeyRef"]["name"]), ref["secretKeyRef"]["key"]
            )
        elif "configMapKeyRef" in ref:
            config_map = release.get("ConfigMap", ref["configMapKeyRef"]["name"])
            env[item["name"]] = str(config_map["data"][ref["configMapKeyRef"]["key"]])
        else:
            raise AssertionError(f"unsupported valueFrom {ref} in {container['name']}")
    return env


def _fill_volume(release: Installed, volume: Obj, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if "configMap" in volume or "secret" in volume:
        source = volume.get("configMap") or volume["secret"]
        kind = "ConfigMap" if "configMap" in volume else "Secret"
        obj = release.get(kind, source.get("name") or source.get("secretName"))
        keys = {i["key"]: i["path"] for i in source.get("items", [])} or {
            k: k for k in {**obj.get("data", {}), **obj.get("stringData", {})}
        }
        for key, path in keys.items():
            value = obj["data"][key] if kind == "ConfigMap" else decode_secret(obj, key)
            (target / path).write_text(value)
    elif "emptyDir" not in volume and "persistentVolumeClaim" not in volume:  # those: a fresh, empty dir
        raise AssertionError(f"unsupported volume {volume}")


def _replace_ports(value: str, ports: dict[int, int]) -> str:
    for chart_port, local in ports.items():
        if value == str(chart_port):
            return str(local)
        if value.endswith(f"={chart_port}"):
            return value[: -len(str(chart_port))] + str(local)
    return value


def localize(
    release: Installed, pod: str, pod_spec: Obj, container: Obj, local: Local, scratch: Path
) -> Container:
    """``container`` of ``pod`` as a local process: argv, env, ports and probes, with every rule applied."""
    workdir = scratch / pod / container["name"]
    ports = {p["containerPort"]: free_port() for p in container.get("ports", [])}
    names = {p["name"]: ports[p["containerPort"]] for p in container.get("ports", []) if "name" in p}
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        target = workdir / "volumes" / mount["name"]
        _fill_volume(release, volumes[mount["name"]], target)
        mounts[mount["mountPath"]] = str(target)

    def local_text(value: str) -> str:
        """Chart text → local text: mount paths and ports first, while the text is still the chart's."""
        for path, here in mounts.items():  # the path itself or below it, wherever it stands in the text
            value = re.sub(re.escape(path) + r"(?=/|$|[^\w.-])", lambda _, h=here: h, value)
        value = _replace_ports(value, ports)
        value = local.exact().get(value, value)
        for chart, here in local.substitutions():
            value = value.replace(chart, here)
        return value

    argv = [local_text(a) for a in [*(container.get("command") or entrypoint()), *container.get("args", [])]]
    if argv[0] == "eda":  # the image's console script is this venv's (rules above apply to chart text only)
        argv[0] = EDA
    env = {name: local_text(value) for name, value in resolve_env(release, container).items()}
    for text in [*argv, *env.values()]:
        assert not IN_CLUSTER.search(text), f"{pod}/{container['name']}: in-cluster address left in {text!r}"
    probes = []
    for kind in PROBES:
        get = container.get(kind, {}).get("httpGet")
        if get:
            port = names[get["port"]] if isinstance(get["port"], str) else ports[get["port"]]
            probes.append((kind, f"http://{HOST}:{port}{get['path']}"))
    return Container(pod, container["name"], argv, env, names, probes, workdir)


def process_env(container: Container, local: Local) -> dict[str, str]:
    """What the process sees: the image's environment (PATH with the venv and, for the PostgreSQL
    image's ``psql``, the embedded PostgreSQL's binaries; HOME), the kubelet's
    ``KUBERNETES_SERVICE_*``, then the container's own ``env``."""
    home = container.workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(
        [str(Path(EDA).parent), str(postgres_bin_dir()), "/usr/local/bin", "/usr/bin", "/bin"]
    )
    env = {"PATH": path, "HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    if local.kubernetes is not None:
        host, port = local.kubernetes
        env |= {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port)}
    return env | container.env


def command(container: Container, pod_spec: Obj, account: Path | None) -> list[str]:
    """argv, in a mount namespace with ``account`` at the service-account path when the pod mounts it."""
    if pod_spec.get("automountServiceAccountToken") and account is not None:
        return with_service_account(container.argv, container.workdir, account)
    if SERVICE_ACCOUNT_PATH.exists():  # this machine is a pod: the role must not see its token
        return with_service_account(container.argv, container.workdir, None)
    return container.argv
