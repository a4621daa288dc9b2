# syntax=docker/dockerfile:1
# infusion image: API (`infusion serve`, default), worker (`infusion worker`) and
# one-shot `infusion migrate`. PostgreSQL and Redis are external (see compose.yaml).

# --- front-end assets (htmx), from the npm registry via package-lock.json ------
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- Python dependencies + project, built with uv from uv.lock -----------------
FROM python:3.11-slim AS build
ARG UV_VERSION=0.13.9
# A C toolchain only for dependencies without a wheel for this platform; it stays
# in this stage and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (cached until uv.lock changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev
# Same layout as a checkout: the app serves these files from node_modules
# (frontend/assets.py VENDOR_FILES lists them).
COPY --from=assets /src/node_modules/htmx.org/dist /app/node_modules/htmx.org/dist
COPY --from=assets /src/node_modules/swagger-ui-dist /app/node_modules/swagger-ui-dist

# --- runtime -------------------------------------------------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 infusion \
    && useradd --system --uid 10001 --gid infusion --home-dir /home/infusion --create-home infusion
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INFUSION_ENV=production \
    INFUSION_LOG_FORMAT=json \
    DATABASE_URL=postgresql://infusion:infusion@postgres:5432/infusion \
    REDIS_URL=redis://redis:6379/0
USER 10001:10001
EXPOSE 8000
CMD ["infusion", "serve", "--host", "0.0.0.0", "--port", "8000"]
