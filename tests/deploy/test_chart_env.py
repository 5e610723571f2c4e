"""Every environment variable the chart gives an eda container is one the code reads: an ``EDA_*`` name
is a field of ``Settings`` (which ignores unknown ``EDA_*`` names, so a typo would silently do nothing),
an ``OTEL_*`` name is one of the OpenTelemetry SDK's. The ``db-user`` initContainer (the PostgreSQL
image) uses each ``EDA_*`` variable it is given in its script or its SQL file. For every values profile.
(``tests/process/test_chart_roles.py`` starts the containers themselves.)"""

from __future__ import annotations

import opentelemetry.environment_variables as otel_api
import opentelemetry.sdk.environment_variables as otel_sdk
from deploytools import Installed

from app.settings import Settings

EDA_NAMES = {f"EDA_{name.upper()}" for name in Settings.model_fields}
OTEL_NAMES = {v for m in (otel_api, otel_sdk) for k, v in vars(m).items() if k.startswith("OTEL_")}


def _eda_image(release: Installed) -> str:
    image: str = release.get("Deployment", "eda-api")["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_eda_containers_get_only_variables_the_code_reads(release: Installed) -> None:
    image = _eda_image(release)
    checked = 0
    for pod, spec in release.pod_specs():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["image"] != image:
                continue
            names = {e["name"] for e in container.get("env", [])}
            unknown = names - EDA_NAMES - OTEL_NAMES
            assert not unknown, f"{pod}/{container['name']}: variables no code reads: {sorted(unknown)}"
            checked += 1
    assert checked >= 7


def test_the_db_user_init_container_uses_every_variable_it_gets(release: Installed) -> None:
    sql = {o["metadata"]["name"]: o for o in release.kind("ConfigMap")}
    for pod, spec in release.pod_specs():
        for container in spec.get("initContainers", []):
            if container["name"] != "db-user":
                continue
            script = " ".join(container["command"] + container["args"])
            files = " ".join(
                value
                for volume in spec["volumes"]
                if "configMap" in volume
                for value in sql[volume["configMap"]["name"]]["data"].values()
            )
            for name in (e["name"] for e in container["env"] if e["name"].startswith("EDA_")):
                assert f"${name}" in script or f"getenv {name}" in files or name in files, (pod, name)
