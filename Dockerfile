# syntax=docker/dockerfile:1
# genesys-sentiment-exporter: slim, non-root, health-checked on /-/healthy.
#
#   docker build -t genesys-sentiment-exporter .
#   docker run --rm -p 127.0.0.1:8729:8729 genesys-sentiment-exporter            # demo mode
#   docker run --rm --env-file exporter.env genesys-sentiment-exporter run --web.listen-address :8729
ARG PYTHON_VERSION=3.11

# ---- build: install the package and its dependencies into a virtualenv -----------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install .

# ---- runtime: the virtualenv only, no compiler, no pip cache, no source tree ----------------------
FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8729

# The exporter's liveness endpoint (readiness, /-/ready, also depends on the stream: not for this).
# No curl in the slim image: Python's standard library does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8729/-/healthy', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["python", "-m", "exporter"]
CMD ["demo", "--web.listen-address", ":8729"]
