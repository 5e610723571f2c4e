"""NATS authentication and TLS in the chart: per-role users with the permissions of ``app.deploy.natsauth``
(one source: ``helm/eda/files/nats-permissions.json``), passwords only from a Secret, the CA mounted
into every role. The rendered server config is checked by a real ``nats-server -t``."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deploytools import CHART, Installed, Obj

from app.deploy.natsauth import password_variable, permissions_document
from app.dev.nats import nats_server_binary

pytestmark = pytest.mark.timeout(600)

NATS_USER = {
    "api": "api",
    "projector": "projector",
    "saga": "saga",
    "worker-inventory": "inventory",
    "worker-payment": "payment",
    "worker-shipping": "shipping",
    "operator": "operator",
}
USER_LINE = re.compile(
    r"\{user: \"(?P<user>[^\"]+)\", password: \$(?P<var>\w+), permissions: (?P<perms>\{.*\})\}$"
)


def env_of(container: Obj) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def nats_conf(release: Installed) -> str:
    return str(release.get("ConfigMap", "eda-nats")["data"]["nats.conf"])


def users_in(conf: str) -> dict[str, tuple[str, dict[str, object]]]:
    found = {}
    for line in conf.splitlines():
        if m := USER_LINE.match(line.strip()):
            found[m["user"]] = (m["var"], json.loads(m["perms"]))
    return found


def test_chart_permissions_file_is_app_natsauth() -> None:
    stored = json.loads((CHART / "files" / "nats-permissions.json").read_text())
    assert stored == permissions_document(), (
        "regenerate: python -m app.deploy.natsauth > helm/eda/files/nats-permissions.json"
    )


@pytest.mark.parametrize("profile", ["production_release", "full_release"])
def test_auth_gives_every_role_its_user_from_a_secret(profile: str, request: pytest.FixtureRequest) -> None:
    release: Installed = request.getfixturevalue(profile)
    for role, user in NATS_USER.items():
        deployment = release.get("Deployment", f"eda-{role}")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["EDA_NATS_USER"] == user, role
        assert env["EDA_NATS_PASSWORD"] == {"secretKeyRef": {"name": "eda-nats-auth", "key": user}}, role
    jobs = {j["metadata"]["labels"]["app.kubernetes.io/component"]: j for j in release.jobs()}
    provision = env_of(jobs["provision"]["spec"]["template"]["spec"]["containers"][0])
    assert provision["EDA_NATS_USER"] == "provision"
    assert provision["EDA_NATS_PASSWORD"] == {"secretKeyRef": {"name": "eda-nats-auth", "key": "provision"}}
    migrate = env_of(jobs["migrate"]["spec"]["template"]["spec"]["containers"][0])
    assert "EDA_NATS_PASSWORD" not in migrate  # `eda migrate` does not talk to NATS
    secret = release.get("Secret", "eda-nats-auth")
    assert sorted(secret["data"]) == sorted(permissions_document())


@pytest.mark.parametrize("profile", ["production_release", "full_release"])
def test_nats_config_has_a_user_per_role_with_natsauth_permissions(
    profile: str, request: pytest.FixtureRequest
) -> None:
    release: Installed = request.getfixturevalue(profile)
    users = users_in(nats_conf(release))
    assert "authorization {" in nats_conf(release)
    assert {u: v for u, (v, _) in users.items()} == {r: password_variable(r) for r in permissions_document()}
    assert {u: p for u, (_, p) in users.items()} == permissions_document()
    nats = release.get("StatefulSet", "eda-nats")
    env = env_of(nats["spec"]["template"]["spec"]["containers"][0])
    for role in permissions_document():
        assert env[password_variable(role)] == {"secretKeyRef": {"name": "eda-nats-auth", "key": role}}


def test_default_values_have_no_auth_and_no_tls(default_release: Installed) -> None:
    conf = nats_conf(default_release)
    assert "authorization" not in conf
    assert "tls {" not in conf
    env = env_of(default_release.get("Deployment", "eda-api")["spec"]["template"]["spec"]["containers"][0])
    assert not {"EDA_NATS_USER", "EDA_NATS_PASSWORD", "EDA_NATS_TLS_CA"} & env.keys()


def test_tls_mounts_the_certificates(full_release: Installed) -> None:
    assert 'cert_file: "/etc/nats-tls/tls.crt"' in nats_conf(full_release)
    nats = full_release.get("StatefulSet", "eda-nats")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "eda-nats-tls"}} in nats["volumes"]
    for role in NATS_USER:
        spec = full_release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert env_of(container)["EDA_NATS_TLS_CA"] == "/etc/eda/nats-tls/ca.crt"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["nats-tls-ca"] == "/etc/eda/nats-tls"
        volume = next(v for v in spec["volumes"] if v["name"] == "nats-tls-ca")
        assert volume["secret"] == {
            "secretName": "eda-nats-tls",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }


def _self_signed(directory: Path) -> None:
    """tls.crt, tls.key and ca.crt (the same self-signed certificate) for ``nats-server -t``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eda-nats")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "ca.crt").write_bytes(pem)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_production_turns_tls_and_auth_on(production_release: Installed) -> None:
    conf = nats_conf(production_release)
    assert "authorization {" in conf
    assert 'cert_file: "/etc/nats-tls/tls.crt"' in conf
    api = production_release.get("Deployment", "eda-api")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(api)["EDA_NATS_TLS_CA"] == "/etc/eda/nats-tls/ca.crt"


def test_rendered_config_is_accepted_by_nats_server(production_release: Installed, tmp_path: Path) -> None:
    conf = tmp_path / "nats.conf"
    _self_signed(tmp_path)
    rendered = nats_conf(production_release).replace("/data/jetstream", str(tmp_path / "js"))
    conf.write_text(rendered.replace("/etc/nats-tls/", f"{tmp_path}/"))
    env = {**os.environ, "POD_NAME": "eda-nats-0"}
    env |= {password_variable(role): f"pw-{role}" for role in permissions_document()}
    proc = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(conf)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
