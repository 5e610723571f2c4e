"""The package layout: every module of ``app`` and ``eda_operator`` is inside the import-linter layers, and
no folder of the repository root shadows the standard library (``operator/`` holds ``eda_operator``)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layer_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return {name.strip("() ") for layer in layers["layers"] for name in re.split(r"[|:]", layer)}


def _top_level_modules() -> set[str]:
    """``app.<x>`` for each module and package directly under app/, plus ``eda_operator``."""
    found = {"eda_operator"}
    for path in (ROOT / "app").iterdir():
        if path.suffix == ".py" and path.name != "__init__.py":
            found.add(f"app.{path.stem}")
        elif (path / "__init__.py").exists():
            found.add(f"app.{path.name}")
    return found


def test_every_top_level_module_is_in_a_layer() -> None:
    missing = _top_level_modules() - _layer_modules()
    assert not missing, f"add these to the layers contract in pyproject.toml: {sorted(missing)}"


def test_the_layers_name_only_modules_that_exist() -> None:
    assert _layer_modules() <= _top_level_modules()


def test_no_package_named_operator_shadows_the_standard_library() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    # `python -c` puts the current directory first on sys.path: run from the root, as a newcomer would.
    proc = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.or_(1, 2))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip() == "3", proc.stderr
