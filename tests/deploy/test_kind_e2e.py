"""`make kind-e2e`: the whole platform on a kind cluster. Skipped where no Docker engine answers."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from deploytools import ROOT

SCRIPT = ROOT / "k8s" / "kind" / "e2e.sh"


def _skip_reason() -> str | None:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=True)
    except (subprocess.SubprocessError, OSError):
        return "no Docker engine answers (`docker info` failed)"
    return None


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)
    assert (ROOT / "k8s" / "kind" / "cluster.yaml").is_file()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_is_shellcheck_clean() -> None:
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.kind
@pytest.mark.timeout(2400)
def test_kind_end_to_end() -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(f"kind e2e needs Docker + kind + kubectl + helm: {reason}")
    subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, check=True, timeout=2300)
