# syntax=docker/dockerfile:1.7
# One image for every eda role: `eda api|projector|saga|worker <name>|operator|migrate|provision ...`.
# Runs as uid 10001 with a read-only root filesystem (only /tmp must be writable).
#
# Supply chain: every Python package comes from the hashed lock requirements/runtime.txt (pip
# --require-hashes: a changed or unlocked file fails the build), the project's wheel is built with the
# hashed build tools of requirements/build.txt, the build stage writes a CycloneDX SBOM of the installed
# environment (/usr/share/doc/eda/sbom.cdx.json in the image; `docker build --target sbom -o out .`
# exports it), and the runtime image has no pip. Pin the base image by digest: `make pin-images`
# (docs/kubernetes.md § Images) writes PYTHON_IMAGE=python:3.12-slim@sha256:... here.

ARG PYTHON_IMAGE=python:3.12-slim

# ---- stage 1: the virtual environment (locked dependencies + the project) and its SBOM -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt requirements/sbom.txt ./requirements/
# No extras: [embedded] (bundled nats-server/PostgreSQL) and [dev] stay out of the image.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt \
    && python -m venv /tmp/build \
    && /tmp/build/bin/pip install --require-hashes --no-deps -r requirements/build.txt \
    && python -m venv /tmp/sbom \
    && /tmp/sbom/bin/pip install --require-hashes --no-deps -r requirements/sbom.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY operator ./operator
RUN /tmp/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip uninstall --yes pip \
    && /opt/venv/bin/eda --help > /dev/null \
    && mkdir -p /sbom \
    && /tmp/sbom/bin/cyclonedx-py environment --pyproject pyproject.toml --mc-type application \
       --output-format JSON --output-file /sbom/eda.cdx.json /opt/venv/bin/python

# ---- the SBOM alone: docker build --target sbom --output type=local,dest=out . ----------------------
FROM scratch AS sbom
COPY --from=build /sbom/eda.cdx.json /

# ---- stage 2: runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="eda" \
      org.opencontainers.image.description="Event-sourced order platform on NATS JetStream with a PostgreSQL read model and a kopf operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/eda-platform/eda" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim"

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# No package installer in the image: the base image's pip (and ensurepip's bundled copy) go.
RUN python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.12/ensurepip /usr/local/bin/pip /usr/local/bin/pip3* \
    && groupadd --system --gid 10001 eda \
    && useradd --system --uid 10001 --gid eda --no-create-home --home-dir /tmp --shell /usr/sbin/nologin eda

COPY --from=build /opt/venv /opt/venv
COPY --from=build /sbom/eda.cdx.json /usr/share/doc/eda/sbom.cdx.json

USER 10001:10001
WORKDIR /tmp
# 8082: API; 8081: health/metrics of projector, saga, workers; 8080: operator health.
EXPOSE 8082 8081 8080
ENTRYPOINT ["eda"]
CMD ["api", "--host", "0.0.0.0", "--port", "8082"]
