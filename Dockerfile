# Switchboard: a slim, non-root serving image (no torch; the default model pack is baked in).
# The install steps are the README's run steps: a virtual environment, then `pip install .`.

# ---- build: install the package and its serving dependencies into a venv --------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/switchboard
ENV PATH=/opt/switchboard/bin:$PATH
# Only what the package needs: the wheel carries service/, models/ (with packs/default), routing/.
COPY pyproject.toml README.md ./
COPY service ./service
COPY models ./models
COPY routing ./routing
COPY export ./export
COPY bench ./bench
# `pip install .` installs the serving dependencies only: torch/transformers are in the [export] extra.
RUN pip install . \
    && python -c "from models.packs import DEFAULT_PACK; assert (DEFAULT_PACK / 'manifest.json').is_file(), DEFAULT_PACK"

# ---- runtime: the venv on a clean slim Python, as an unprivileged user -----------------------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Conversation sentiment, emotion and intent on CPU, with explainable routing decisions" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard \
    && mkdir -p /app /data \
    && chown switchboard:switchboard /app /data
COPY --from=build /opt/switchboard /opt/switchboard
ENV PATH=/opt/switchboard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=8000 \
    SWITCHBOARD_DATA_DIR=/data
WORKDIR /app
USER 10001:10001
EXPOSE 8000
VOLUME ["/data"]
# Healthy = pack loaded and warm and the store answers (the same check as the k8s readiness probe).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SWITCHBOARD_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
# API keys come from the environment (SWITCHBOARD_API_KEYS); the service refuses to start without
# them unless SWITCHBOARD_AUTH_DISABLED=true is set explicitly.
CMD ["switchboard", "serve"]
