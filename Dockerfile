# syntax=docker/dockerfile:1
# reoptd container image: the daemon on CPU-only torch, as a non-root user, state on a volume.
#
#   docker build -t reoptd:0.1.0 .                       # needs the network (PyPI, PyTorch's CPU index)
#   docker run --rm -p 127.0.0.1:8464:8464 -p 127.0.0.1:9464:9464 -v reoptd:/var/lib/reoptd reoptd:0.1.0
#
# Without REOPTD_POLICIES (or `run --policies DIR`) it runs the embedded demo. deploy/compose/ and
# deploy/kubernetes/ run it on a directory of policies; deploy/README.md is the operator's guide.
# The install steps are the Makefile's $(STAMP) commands (tests/deploy/test_dockerfile.py keeps
# them the same), so the fresh-clone `make` that CI runs covers them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# requirements.lock pins torch==2.13.0; PyPI's Linux wheel of that version is the CUDA build
# (several GB of nvidia-* wheels). PyTorch's CPU index serves 2.13.0+cpu, which satisfies the
# pin and is preferred over the plain version; every other package still comes from PyPI.
# Build arguments are environment variables of RUN: a mirror is
#   --build-arg PIP_INDEX_URL=https://mirror/simple --build-arg PIP_EXTRA_INDEX_URL=https://mirror/torch-cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/reoptd/.venv
WORKDIR /src
RUN python -m venv "$VENV"
COPY requirements.lock pyproject.toml README.md ./
# The same commands as the Makefile's $(STAMP) target.
RUN "$VENV/bin/python" -m pip install -q --upgrade pip \
 && "$VENV/bin/python" -m pip install -q -r requirements.lock
COPY daemon ./daemon
# Not editable (-e) as in the Makefile: the image keeps no source tree, only the installed package.
RUN "$VENV/bin/python" -m pip install -q --no-deps .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="reoptd" \
      org.opencontainers.image.description="A daemon that keeps production ML models optimized: drift detection, re-optimization, validated promotion, Prometheus metrics." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="deploy/README.md"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned.
RUN groupadd --system --gid 10001 reoptd \
 && useradd --system --uid 10001 --gid reoptd --home-dir /var/lib/reoptd --shell /usr/sbin/nologin reoptd \
 && mkdir -p /var/lib/reoptd /var/cache/reoptd /etc/reoptd/policies \
 && chown reoptd:reoptd /var/lib/reoptd /var/cache/reoptd

COPY --from=build /opt/reoptd/.venv /opt/reoptd/.venv

# REOPTD_HOME holds the SQLite database and the artifacts (unless REOPTD_DB_URL and, where
# supported, REOPTD_ARTIFACTS point elsewhere). The API and /metrics listen on every interface of
# the container: publish them on the host's loopback or put them behind a proxy (deploy/README.md).
# Caches go to /var/cache/reoptd: the root file system may be read-only (Kubernetes).
ENV PATH=/opt/reoptd/.venv/bin:$PATH \
    REOPTD_HOME=/var/lib/reoptd \
    REOPTD_API_HOST=0.0.0.0 \
    REOPTD_METRICS_HOST=0.0.0.0 \
    HOME=/var/lib/reoptd \
    XDG_CACHE_HOME=/var/cache/reoptd \
    MPLCONFIGDIR=/var/cache/reoptd/matplotlib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

VOLUME ["/var/lib/reoptd"]
WORKDIR /var/lib/reoptd
USER 10001:10001
EXPOSE 8464 9464

# /healthz answers while the process lives (readiness, /readyz, is for orchestrators). The slim
# image has no curl: Python's urllib does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('REOPTD_API_PORT', '8464') + '/healthz', timeout=4)"]

# `docker run IMAGE` runs the daemon; `docker run IMAGE status` (or any command) runs that one.
# SIGTERM stops it cleanly: it stops scheduling and waits for a running cycle.
STOPSIGNAL SIGTERM
ENTRYPOINT ["reoptd"]
CMD ["run"]
