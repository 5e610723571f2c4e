"""``make pin-images``: pin the chart's third-party images and the Dockerfile's base image by digest.

For each image of ``helm/eda/values.yaml`` (``CHART_IMAGES``: NATS and its exporter sidecar,
PostgreSQL, Jaeger, the test pod's) and the
Dockerfile's ``PYTHON_IMAGE``, asks the registry for the digest of ``repository:tag`` — the multi-arch
index digest, so every platform pulls the same content — and writes it next to the tag (values:
``digest: sha256:...``; Dockerfile: ``python:3.12-slim@sha256:...``), keeping every comment. Needs
``crane`` (go-containerregistry) or ``docker buildx`` and access to the registries; the eda image's own
digest comes from its build (``--set image.digest=...``). Bump procedure: change a tag, run this, review
the diff, commit (docs/kubernetes.md § Images).

    python tools/pin_images.py            # resolve and write
    python tools/pin_images.py --dry-run  # print what would change
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "helm" / "eda" / "values.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CHART_IMAGES = ("nats.image", "nats.promExporter.image", "postgresql.image", "jaeger.image", "tests.image")
"""The values paths of the third-party images (the eda image's digest comes from its build)."""
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
BASE_IMAGE = re.compile(r"^(ARG PYTHON_IMAGE=)([^@\s]+)(@sha256:[0-9a-f]{64})?$", re.MULTILINE)


def resolve(reference: str) -> str:
    """The index digest of ``reference`` (``repository:tag``) from its registry."""
    if shutil.which("crane"):
        command = ["crane", "digest", reference]
    elif shutil.which("docker"):
        command = ["docker", "buildx", "imagetools", "inspect", reference]  # prints "Digest: sha256:..."
    else:
        raise SystemExit("pin-images needs crane or docker buildx (and access to the registries)")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = DIGEST.search(out)
    if found is None:
        raise SystemExit(f"no digest for {reference}: {out!r}")
    return found.group(0)


def set_digest(values: str, image: str, digest: str) -> str:
    """``values`` (values.yaml text) with ``<image>.digest`` set to ``digest`` (``image``: a dotted
    path such as ``nats.image``); comments kept."""
    lines = values.splitlines(keepends=True)
    path: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if match is None or line.lstrip().startswith("#"):
            continue
        indent, key = len(match.group(1)), match.group(2)
        while path and path[-1][0] >= indent:
            path.pop()
        if [k for _, k in path] == image.split(".") and key == "digest":
            lines[i] = f"{match.group(1)}digest: {digest}\n"
            return "".join(lines)
        path.append((indent, key))
    raise KeyError(f"{image}.digest not in values.yaml")


def set_base_digest(dockerfile: str, digest: str) -> str:
    """The Dockerfile with ``ARG PYTHON_IMAGE=<image>@<digest>``."""
    if not BASE_IMAGE.search(dockerfile):
        raise KeyError("ARG PYTHON_IMAGE= not in the Dockerfile")
    return BASE_IMAGE.sub(lambda m: f"{m.group(1)}{m.group(2)}@{digest}", dockerfile, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the digests, change nothing")
    args = parser.parse_args()
    values_text = VALUES.read_text()
    values = yaml.safe_load(values_text)
    for path in CHART_IMAGES:
        image = values
        for key in path.split("."):
            image = image[key]
        digest = resolve(f"{image['repository']}:{image['tag']}")
        print(f"{path}: {image['repository']}:{image['tag']}@{digest}")
        values_text = set_digest(values_text, path, digest)
    dockerfile = DOCKERFILE.read_text()
    base = BASE_IMAGE.search(dockerfile)
    assert base is not None
    base_digest = resolve(base.group(2))
    print(f"Dockerfile PYTHON_IMAGE: {base.group(2)}@{base_digest}")
    if not args.dry_run:
        VALUES.write_text(values_text)
        DOCKERFILE.write_text(set_base_digest(dockerfile, base_digest))


if __name__ == "__main__":
    main()
