"""How ``eda operator`` logs in to the Kubernetes API: kopf's own login functions, in kopf's order of
preference (the in-cluster service account, then ``KUBECONFIG`` / ``~/.kube/config``), registered on the
operator's private registry. A bare ``kopf.OperatorRegistry`` has no login handlers at all (only kopf's
implicit default registry adds them), so without these the operator never reaches the API.

``resolve`` runs the same functions once before kopf starts, so the operator states which credentials it
uses, or exits with a one-line reason when there are none (kopf alone would log "Ran out of valid
credentials" and die with a traceback). The handlers still run on every (re-)authentication, so a rotated
service-account token is read again.

One deliberate difference from kopf: in a pod, the API server's address comes from
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` (set in every container), as client-go's in-cluster
config does; kopf's fixed ``https://kubernetes.default.svc`` needs the cluster DNS, which pods with
``hostNetwork`` or ``dnsPolicy: None`` do not have. Without those variables kopf's address stays.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import kopf
import yaml

# Fixed in kopf and in every pod (the kubelet mounts the projected token there).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
NO_CREDENTIALS = (
    f"no Kubernetes credentials: no in-cluster service account ({SERVICE_ACCOUNT_DIR}/token) and no "
    "kubeconfig (KUBECONFIG is unset and ~/.kube/config does not exist); run it in a pod with a service "
    "account, or set KUBECONFIG=/path/to/kubeconfig"
)
log = logging.getLogger(__name__)


class NoCredentials(RuntimeError):
    """No usable Kubernetes credentials; the message is one actionable line."""


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    """Credentials kopf will use, and where they came from (for the log)."""

    info: kopf.ConnectionInfo
    source: str

    def describe(self) -> str:
        namespace = self.info.default_namespace or "-"
        return f"Kubernetes API {self.info.server} with {self.source} (default namespace {namespace})"


def _in_cluster_server() -> str | None:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def service_account(settings: kopf.OperatorSettings) -> Login | None:
    """The pod's service account (token, CA, namespace), or None outside a pod."""
    info = kopf.login_with_service_account(settings=settings)
    if info is None:
        return None
    server = _in_cluster_server()
    if server is not None:
        info = dataclasses.replace(info, server=server)
    return Login(info, f"the in-cluster service account ({SERVICE_ACCOUNT_DIR})")


def _kubeconfig_paths() -> list[str]:
    value = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [os.path.expanduser(p.strip()) for p in value.split(os.pathsep) if p.strip()]


def _current_context(paths: list[str]) -> str:
    """The first ``current-context`` (kubectl's rule), for the log line only."""
    for path in paths:
        with open(path, encoding="utf-8") as f:
            context = (yaml.safe_load(f) or {}).get("current-context")
        if context:
            return str(context)
    return "-"


def kubeconfig(settings: kopf.OperatorSettings) -> Login | None:
    """The current context of ``KUBECONFIG`` (or ``~/.kube/config``), or None when there is neither."""
    if not os.environ.get("KUBECONFIG") and not os.path.exists(os.path.expanduser("~/.kube/config")):
        return None
    paths = _kubeconfig_paths()
    where = os.pathsep.join(paths)
    try:
        info = kopf.login_with_kubeconfig(settings=settings)
        context = _current_context(paths)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, kopf.LoginError) as exc:
        reason = (
            f"{exc} is not defined in it" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        )
        raise NoCredentials(f"cannot use the kubeconfig {where}: {reason}") from exc
    if info is None:
        return None
    if not (info.token or info.certificate_path or info.certificate_data or info.username):
        log.warning(
            "kubeconfig %s (context %s) has no token, client certificate or password (exec and "
            "auth-provider plugins are not run): requests will be anonymous",
            where,
            context,
        )
    return Login(info, f"kubeconfig {where} (context {context})")


def resolve(settings: kopf.OperatorSettings) -> Login:
    """What kopf will log in with: the service account first, then the kubeconfig."""
    login = service_account(settings) or kubeconfig(settings)
    if login is None:
        raise NoCredentials(NO_CREDENTIALS)
    return login


def register_login(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    """Register both login handlers on ``registry`` (kopf prefers the service account's credentials, and
    falls back to the kubeconfig's when the API rejects them); returns it."""

    @kopf.on.login(registry=registry, id="service-account", errors=kopf.ErrorsMode.IGNORED)
    def login_service_account(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        login = service_account(settings)
        return login.info if login is not None else None

    @kopf.on.login(registry=registry, id="kubeconfig", errors=kopf.ErrorsMode.IGNORED)
    def login_kubeconfig(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        login = kubeconfig(settings)
        return login.info if login is not None else None

    return registry
