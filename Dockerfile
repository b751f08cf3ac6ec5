# pbx-core: one image for every role (`pbx-core web`, `pbx-core bridge`, `pbx-core db upgrade`, ...).
# Multi-stage: wheels are built with a compiler in `build`; the runtime stage has no compiler.
# The base is pinned to an exact patch release; add `@sha256:...` (docker buildx imagetools inspect)
# to pin the digest too.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pbx_core ./pbx_core
COPY bench ./bench
# The package and its runtime dependencies only: no dev/test extras.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PBX_HTTP_HOST=0.0.0.0 \
    PBX_HTTP_PORT=8000 \
    PBX_ASTERISK_CONFIG_DIR=/etc/asterisk/pbx-core
# uid/gid 1000 on purpose: the Asterisk image runs as 1000 too, so the shared generated-config
# volume is writable by web and readable by Asterisk whichever container initialises it.
# espeak-ng + sox: an apply speaks the menus' text-to-speech prompts (Dutch and English) into
# PBX_ASTERISK_SOUNDS_DIR (README "Asterisk configuration": why espeak-ng).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 pbx \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin pbx \
    && mkdir -p /app /etc/asterisk/pbx-core /var/lib/pbx-core/sounds \
    && chown pbx:pbx /etc/asterisk/pbx-core /var/lib/pbx-core/sounds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels pbx-core \
    && rm -rf /wheels
WORKDIR /app
# The wallboard UI is static files outside the Python package; `web` serves it with --wallboard-dir.
COPY --chown=pbx:pbx wallboard ./wallboard
# The bridge's container health check (it has no HTTP port): see docker/healthcheck_bridge.py.
COPY docker/healthcheck_bridge.py /usr/local/bin/pbx-bridge-healthcheck
USER pbx
EXPOSE 8000
# Meaningful for `pbx-core web` (the default command). The bridge has no HTTP port: compose
# overrides this check per service.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# A plain CMD (no ENTRYPOINT) so one-off commands read naturally:
#   docker compose run --rm web pbx-core keys create --reseller ACME
CMD ["pbx-core", "web", "--wallboard-dir", "/app/wallboard"]
