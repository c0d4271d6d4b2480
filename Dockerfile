# syntax=docker/dockerfile:1
# genesys-sentiment-exporter: slim, non-root, health-checked on /-/healthy.
#
#   docker build -t genesys-sentiment-exporter .                       # the product: `run` by default
#   docker run --rm --env-file exporter.env -p 127.0.0.1:8729:8729 genesys-sentiment-exporter
#   docker build --target demo -t genesys-sentiment-exporter:demo .   # adds the simulated Genesys Cloud
#   docker run --rm -p 127.0.0.1:8729:8729 genesys-sentiment-exporter:demo demo --web.listen-address :8729
#
# The default image holds no simulator: a deployment that forgets its command fails on missing
# credentials instead of serving synthetic agents and reporting ready.
# Pinned to a patch release (the compose receiver uses the same image); bump deliberately.
ARG PYTHON_VERSION=3.11.14

# ---- build: install the package and its dependencies into a virtualenv -----------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY genesys_sentiment_exporter ./genesys_sentiment_exporter
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install .

# ---- build-demo: the same, plus the simulator package (for `demo` and `simulate`) ------------------
FROM build AS build-demo
COPY simulator ./simulator
RUN /opt/venv/bin/pip install ./simulator

# ---- base: the runtime user and health check shared by both images ---------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter
USER 10001:10001
EXPOSE 8729

# The exporter's liveness endpoint (readiness, /-/ready, also depends on the stream: not for this).
# No curl in the slim image: Python's standard library does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8729/-/healthy', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["python", "-m", "genesys_sentiment_exporter"]

# ---- demo (`--target demo`): the exporter and the simulator -----------------------------------------
FROM base AS demo
COPY --from=build-demo /opt/venv /opt/venv
CMD ["demo", "--web.listen-address", ":8729"]

# ---- runtime (the default, last stage): the virtualenv only, no simulator, no compiler, no source ---
FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
CMD ["run", "--web.listen-address", ":8729"]
