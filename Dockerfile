# One image for both parts of FilterJob:
#   worker pods:  filterjob-worker        (the default command; configured by FILTERJOB_* variables)
#   operator:     filterjob operator      (e.g. `docker run IMAGE filterjob operator`)
#
# Build it with scripts/build-image.sh, which first makes the wheelhouse this file installs
# from (scripts/make-wheelhouse.sh: the locked dependencies and the filterjob wheel), then
# runs the build with the version and revision as labels. The build reaches no package index.
#
# The image runs with a read-only root filesystem: nothing is written below / at run
# time (bytecode is compiled at build time, PYTHONDONTWRITEBYTECODE stops any more),
# and HOME points at /tmp, the one writable place, which the pod mounts as an emptyDir.

# Both stages use the same base: the virtualenv links to the interpreter that made it
# (/usr/local/bin/python3 in the python image, /usr/bin/python3 in a Debian one).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: install the locked dependencies and the wheel into /opt/filterjob, offline
FROM ${PYTHON_IMAGE} AS builder

WORKDIR /src
COPY requirements.lock ./
COPY wheelhouse/ wheelhouse/
COPY scripts/build-wheel-venv.sh scripts/
# The same script builds the virtualenv that tests/integration/test_wheel.py checks.
RUN scripts/build-wheel-venv.sh /opt/filterjob wheelhouse

# ---- runtime: the interpreter of the same base image and the virtualenv, nothing else
FROM ${PYTHON_IMAGE}

# A numeric user, so Kubernetes can check runAsNonRoot; the same UID the worker pod
# template sets (runAsUser: 10001). The base's own pip goes (the python image has one; a
# Debian one keeps pip's wheel for venv): the image runs what it was built with, nothing
# installs into it later.
RUN groupadd --system --gid 10001 filterjob \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin filterjob \
    && rm -rf /usr/local/bin/pip /usr/local/bin/pip3* /usr/local/lib/python3*/site-packages/pip \
       /usr/local/lib/python3*/site-packages/pip-*.dist-info /usr/local/lib/python3*/ensurepip/_bundled \
       /usr/share/python-wheels

COPY --from=builder /opt/filterjob /opt/filterjob

ENV PATH=/opt/filterjob/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp

USER 10001:10001

# 8080: worker /healthz, /readyz, /metrics (FILTERJOB_HEALTH_PORT) and the operator's
# liveness endpoint; 9090: the operator's /metrics (FILTERJOB_METRICS_PORT).
EXPOSE 8080 9090

# No HEALTHCHECK: the worker's probes are Kubernetes liveness/readiness probes.
CMD ["filterjob-worker"]

# Last, so a new revision changes only the image's metadata, never a layer above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/filterjob/filterjob
LABEL org.opencontainers.image.title="filterjob" \
      org.opencontainers.image.description="Batch image filtering on Kubernetes: the FilterJob operator and its RabbitMQ workers." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
