# Descent: one image for the API, the worker and the one-shot migration.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY core ./core
COPY store ./store
COPY models ./models
COPY worker ./worker
COPY migrations ./migrations
COPY descent ./descent
RUN pip install . \
    && useradd --create-home --uid 10001 descent \
    && mkdir -p /data && chown descent /data

USER descent
ENV DESCENT_DATA_DIR=/data
EXPOSE 8000
# Overridden per service in docker-compose.yml (descent api | descent worker | descent migrate).
CMD ["descent", "api", "--host", "0.0.0.0", "--port", "8000"]
